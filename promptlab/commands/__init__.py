"""The command line's commands, one module each; `promptlab.cli` declares their options (docs/architecture.md,
layer 12). A command asks the task's kind (promptlab.kinds) for what differs between kinds."""
