"""The catalog: the files a user writes, found by name (docs/architecture.md, layer 2).

    catalog.py     catalog folders (built-in, PROMPTLAB_PATH, --catalog) and a task's Setup
    task.py        tasks: labels, data specs, the kind by name and what a task file of each kind must satisfy
    template.py    Jinja2 templates with one answer slot, rendered in a sandbox
    verbalizer.py  label words
    answers.py     the assistant's answer files
    yamlfile.py    strict YAML loading with line numbers
    lint.py        `templates check`: the checks that need only the files
"""
