"""The `promptlab` command line. Heavy imports (torch, transformers) happen inside commands,
so `--help`, `templates` and `models list` start instantly."""
from __future__ import annotations

import click

from promptlab.backends.calibration import CALIBRATIONS  # torch-free
from promptlab.runtime.distributed import quiet_other_processes
from promptlab.errors import UserError
from promptlab.kinds import ALL_METHODS  # torch-free
from promptlab.data.limits import DEFAULT_LIMIT_BY, LIMIT_BY  # torch-free
from promptlab.data.sampling import DEFAULT_SEEDS  # torch-free
from promptlab.catalog.verbalizer import AGGREGATIONS  # torch-free


class _Group(click.Group):
    """Prints a UserError as one message and exits with status 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error.message}", err=True)
            ctx.exit(2)


catalog_option = click.option("--catalog", "catalogs", multiple=True, type=click.Path(file_okay=False),
                              help="Extra catalog folder (repeatable); later ones override earlier ones.")
model_option = click.option("--model", default=None, help="Model alias, local folder or hub id [default: a --trained "
                                                          "artefact's, else the task's model:, else smollm2-135m "
                                                          "(text and entity tasks)].")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
DTYPES = ("auto", "float32", "bfloat16", "float16")
dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                            help="Weights' precision. auto: bfloat16 on a GPU, or a CPU, that runs it natively "
                                 "(AVX512-BF16, AMX, ARM BF16), else float32. float16 needs a GPU.")


def _batch_size(ctx, param, value: str) -> int | str:
    """A positive integer, or 'auto': a size that suits the device (promptlab.backends.batching)."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"'{value}' is neither a positive integer nor 'auto'")
    return int(value)


def _catalog(catalogs):
    from promptlab.catalog.catalog import Catalog
    return Catalog.from_options(catalogs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptlab")
def main():
    """Prompt learning and few/zero-shot text classification with templates and verbalizers as files."""
    quiet_other_processes()  # under a launcher only the main process prints results


# -- zeroshot ---------------------------------------------------------------------------------
reject_option = click.option("--reject-below", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                             metavar="P", help="Answer out_of_scope when the top label probability is below P.")
task_option = click.option("--task", default=None,
                           help="Task name (tasks/<task>.yaml in a catalog) [default: the --trained artefact's].")
template_option = click.option("--template", default=None,
                               help="Template name (templates/<task>/<name>.jinja) [default: the artefact's, else "
                                    "the task's `template:`, else its only one].")
verbalizer_option = click.option("--verbalizer", default=None,
                                 help="Verbalizer name [default: the artefact's, else 'default', else the only one].")
trained_option = click.option("--trained", type=click.Path(), default=None,
                              help="A trained artefact folder (`fewshot --output DIR` writes DIR/seed-N), any method.")
calibrate_option = click.option(
    "--calibrate", type=click.Choice(CALIBRATIONS), default=None,
    help="contextual: divide out the label bias of content-free inputs; pmi: domain-conditional PMI; "
         "batch: divide out the mean label distribution of the examples classified together "
         "[default: contextual; with --trained, the scoring it was trained with].")
aggregate_option = click.option("--aggregate", type=click.Choice(AGGREGATIONS), default=None,
                                help="How the words of one label combine [default: logsumexp, or the artefact's].")
batch_size_option = click.option(
    "--batch-size", default="auto", show_default=True, callback=_batch_size, metavar="N|auto",
    help="Examples scored per forward pass, or auto: 32 on the CPU, 256 on a GPU; halved whenever the GPU runs out of "
         "memory.")


@main.command()
@task_option
@template_option
@verbalizer_option
@model_option
@calibrate_option
@aggregate_option
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="A JSONL/CSV/TSV file replacing the split.")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use N of the examples, chosen by --limit-by; the output names which.")
@click.option("--limit-by", type=click.Choice(LIMIT_BY), default=DEFAULT_LIMIT_BY, show_default=True,
              help="Which N --limit takes: the first N of the file, or the eval suites' stratified sample (each "
                   "label keeps its share); rows stay in file order.")
@batch_size_option
@device_option
@dtype_option
@catalog_option
@click.option("--output", type=click.Path(), default=None, help="Folder for predictions.jsonl and metrics.json.")
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON line of the results.")
@trained_option
@click.option("--prompt", type=click.Path(), default=None, hidden=True, help="Deprecated: use --trained.")
@reject_option
def zeroshot(task, template, verbalizer, model, calibrate, aggregate, data, split, limit, limit_by, batch_size, device,
             dtype, catalogs, output, as_json, trained, prompt, reject_below):
    """Classify (or tag: entity tasks) a task's labelled examples and report metrics; with --trained, apply a
    trained artefact."""
    options = dict(locals())
    from promptlab.commands.zeroshot import run_zeroshot_command
    run_zeroshot_command(**options)


# the assistant (assist; serve --answers): defaults chosen on dev data, see promptlab.apply.assist
ASSISTANT_OPTIONS = ("answers", "knowledge", "encoder", "intent_threshold", "retrieval_threshold", "top_passages")


def classifier_options(command):
    """The options that choose the classifier a command applies: a task's files, or a trained artefact."""
    for option in reversed((task_option, template_option, verbalizer_option, model_option, trained_option,
                            calibrate_option, aggregate_option)):
        command = option(command)
    return command


def assistant_options(command):
    for option in reversed((
        click.option("--answers", default=None, metavar="NAME",
                     help="Answer file answers/<task>/<name>.yaml [default: 'default', else the only one]."),
        click.option("--knowledge", default=None, metavar="PATH",
                     help="Knowledge base: a JSONL/CSV file of documents (id, title, text, link) or a folder of "
                          "Markdown files, or such a name in the catalog's answers/<task>/ (e.g. knowledge.jsonl); "
                          "indexed once into the cache."),
        click.option("--knowledge-encoder", "encoder", default="minilm-l6", show_default=True,
                     help="Sentence encoder of the knowledge base's dense index."),
        click.option("--intent-threshold", type=click.FloatRange(0, 1), default=0.6, show_default=True,
                     metavar="P", help="Below this intent probability, search the knowledge base instead."),
        click.option("--retrieval-threshold", type=click.FloatRange(-1, 1), default=0.6, show_default=True,
                     metavar="S", help="Below this cosine similarity of the best passage, hand off to a person."),
        click.option("--top-passages", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Passages returned with a retrieval reply."),
    )):
        command = option(command)
    return command


# -- predict ----------------------------------------------------------------------------------
@main.command()
@classifier_options
@click.option("--input", "input_path", required=True, metavar="FILE|-",
              help="JSONL, JSON, CSV or TSV rows with the fields the template reads, or .txt: one plain text per "
                   "line, which becomes the field 'text'; '-': standard input (JSONL, or plain text lines).")
@click.option("--output", required=True, metavar="FILE|-", help="Where the rows go; '-': standard output.")
@click.option("--format", "output_format_name", type=click.Choice(["jsonl", "csv"]), default=None,
              help="Output format [default: csv for a .csv file, else jsonl].")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Add `top`: the K best labels with probabilities.")
@batch_size_option
@device_option
@dtype_option
@catalog_option
@click.option("--resume", is_flag=True, help="Continue an interrupted output file: skip the rows it already holds.")
@reject_option
def predict(task, template, verbalizer, model, trained, calibrate, aggregate, input_path, output, output_format_name,
            top_k, batch_size, device, dtype, catalogs, resume, reject_below):
    """Label new, unlabelled text: each input row comes out with `label` and `probabilities` (entity tasks:
    `entities`), in order."""
    options = dict(locals())
    from promptlab.commands.prediction import run_predict_command
    run_predict_command(**options)


# -- serve ------------------------------------------------------------------------------------
@main.command()
@classifier_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Rows of waiting requests classified together in one call.")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="How long the first waiting request waits for others to join its batch.")
@click.option("--max-queue", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows allowed to wait; beyond it requests get 503 at once.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=8 * 1024 * 1024, show_default=True,
              help="Largest request body; a larger one gets 413 before the rest of it is read.")
@click.option("--max-rows", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows in one request (at most --max-queue); more get 413.")
@click.option("--max-text-chars", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Characters in one field of one row; more get 413.")
@click.option("--deadline-s", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="A request not answered within this many seconds gets 504.")
@click.option("--max-spans", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Entity-prompt tasks: candidate spans one request may render and score (~3 per word); more get "
                   "413.")
@click.option("--calibrate-on", "calibrate_on", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --calibrate batch: rows (JSONL/JSON/CSV/TSV) whose mean label distribution is the prior, "
                   "fixed at start-up.")
@reject_option
@click.option("--batch-size", default="auto", show_default=True, callback=_batch_size, metavar="N|auto",
              help="Rows per forward pass within a micro-batch, or auto: 12 on the CPU, 256 on a GPU; halved whenever "
                   "the GPU runs out of memory.")
@device_option
@dtype_option
@catalog_option
@assistant_options
def serve(task, template, verbalizer, model, trained, calibrate, aggregate, host, port, max_batch, max_wait_ms,
          max_queue, max_body_bytes, max_rows, max_text_chars, deadline_s, max_spans, calibrate_on, reject_below,
          batch_size, device, dtype, catalogs, answers, knowledge, encoder, intent_threshold, retrieval_threshold,
          top_passages):
    """Serve a model over HTTP: POST /classify (entity tasks: POST /entities), GET /health, GET /info, and GET /:
    a page to try it; with --answers and --knowledge, the assistant's POST /reply (needs promptlab[serve])."""
    options = dict(locals())
    options["limits"] = {name: options.pop(name) for name in ("max_body_bytes", "max_rows", "max_text_chars",
                                                               "deadline_s", "max_spans")}
    assistant = {name: options.pop(name) for name in ASSISTANT_OPTIONS}
    if assistant["answers"] or assistant["knowledge"]:
        from promptlab.commands.assisting import run_assist_serve_command
        options.pop("calibrate_on")  # the assistant's classifier keeps its own calibration
        run_assist_serve_command(**options, **assistant)
        return
    from promptlab.commands.serving import run_serve_command
    run_serve_command(**options)


# -- assist -----------------------------------------------------------------------------------
@main.command()
@classifier_options
@assistant_options
@click.option("--input", "input_path", required=True, metavar="FILE|-",
              help="JSONL, JSON, CSV or TSV rows with the message as `text` and any variables the answers read; "
                   "'-': standard input (JSONL, or one message per line).")
@click.option("--output", required=True, metavar="FILE|-", help="JSONL: each row with its reply; '-': standard output.")
@batch_size_option
@device_option
@dtype_option
@catalog_option
def assist(task, template, verbalizer, model, trained, calibrate, aggregate, answers, knowledge, encoder,
           intent_threshold, retrieval_threshold, top_passages, input_path, output, batch_size, device, dtype, catalogs):
    """Answer customer messages: the intent's answer template, else the knowledge base, else a person. Each row
    comes out with path, intent, probability, answer, passages and reason."""
    options = dict(locals())
    from promptlab.commands.assisting import run_assist_command
    run_assist_command(**options)


# -- fewshot ----------------------------------------------------------------------------------


@main.command()
@click.option("--task", default=None, help="Task name; its train split is the pool the k-shot sample comes from. "
                                           "[required]")
@click.option("--k", type=click.IntRange(min=1), default=16, show_default=True,
              help="Training examples per class (entity tasks: mentions per type); a dev set of k per class is "
                   "drawn too (LM-BFF).")
@click.option("--template", default=None, help="Template name [default: the task's `template:`, else its only one].")
@click.option("--verbalizer", default=None, help="Verbalizer name [default: 'default', else the only one].")
@click.option("--method", type=click.Choice(ALL_METHODS), default=None,
              help="[default: softprompt; token-finetune on entity tasks]. Its options and their defaults: "
                   "--method M --help-method.")
@click.option("--help-method", is_flag=True,
              help="Show the options of --method (every method without it), their defaults and what they do; "
                   "then exit.")
@click.option("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), show_default=True,
              help="Comma-separated sampling/training seeds (LM-BFF's five by default).")
@click.option("--model", default=None,
              help="Model alias, local folder or hub id [default: the task's model:, else smollm2-135m; "
                   "token-finetune: minilm-l6; setfit and head --encoder train --encoder instead].")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimizer steps [default: the method's, see --help-method].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate [default: the method's, see --help-method].")
@click.option("--prompt-length", type=click.IntRange(min=1), default=None,
              help="Soft prompt vectors (softprompt, entity-prompt) [default: 8].")
@click.option("--train-batch-size", "batch_size", type=click.IntRange(min=1), default=None,
              help="Training examples per optimizer step [default: the method's, see --help-method].")
@click.option("--batch-size", "old_batch_size", type=click.IntRange(min=1), default=None, hidden=True,
              help="Deprecated: --train-batch-size (elsewhere --batch-size sizes scoring).")
@click.option("--encoder", default=None,
              help="Sentence encoder (alias, folder or hub id; for head, several joined with '+', e.g. "
                   "mpnet-base+minilm-l6) for head and setfit [setfit: minilm-l6; head: pool the scoring model].")
@click.option("--option", "method_options", multiple=True, metavar="NAME=VALUE",
              help="Any option of the method, e.g. --option rank=16 (lora); the value is read as YAML. Repeatable.")
@reject_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use N of the test examples, chosen by --limit-by; the output names which.")
@click.option("--limit-by", type=click.Choice(LIMIT_BY), default=DEFAULT_LIMIT_BY, show_default=True,
              help="Which N --limit takes: the first N of the split, or the eval suites' stratified sample (each "
                   "label keeps its share); rows stay in file order.")
@device_option
@dtype_option
@catalog_option
@click.option("--output", type=click.Path(), default=None,
              help="Folder for fewshot.json and, per seed, predictions and the trained artefact (DIR/seed-N, "
                   "for --trained).")
@click.option("--overwrite", is_flag=True,
              help="Clear the DIR/seed-N folders this run writes; without it, a filled one is refused.")
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON line of the results.")
def fewshot(task, k, template, verbalizer, method, help_method, seeds, model, steps, lr, prompt_length, batch_size,
            old_batch_size, encoder, method_options, reject_below, limit, limit_by, device, dtype, catalogs, output,
            overwrite, as_json):
    """Train on k examples per class over several seeds; report mean ± std next to zero-shot. A method's options
    and their defaults: --method M --help-method."""
    if help_method:
        from promptlab.commands.fewshot import method_help
        click.echo(method_help(method))
        return
    if task is None:
        raise click.UsageError("Missing option '--task'.")
    if old_batch_size is not None:
        click.echo("note: fewshot's --batch-size is --train-batch-size now", err=True)
        batch_size = batch_size or old_batch_size
    options = {name: value for name, value in locals().items() if name not in ("help_method", "old_batch_size")}
    from promptlab.commands.fewshot import run_fewshot_command
    run_fewshot_command(**options)


# -- eval -------------------------------------------------------------------------------------
@main.command("eval")
@click.argument("suite")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Folder for results.jsonl and the reports; a rerun into it skips finished runs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Examples scored per forward pass by zero-shot units (a trained method's training batches: "
                   "its batch_size option).")
@device_option
@dtype_option
@catalog_option
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON line: suite, output, runs, seconds.")
@click.option("--report-only", is_flag=True,
              help="Run nothing: write the reports from the runs already finished in DIR (e.g. of a stopped run).")
def eval_suite(suite, output, batch_size, device, dtype, catalogs, as_json, report_only):
    """Run an evaluation suite (a name in eval_suites/ or a .yaml path) and write its reports."""
    options = dict(locals())
    from promptlab.commands.eval import run_eval_command
    run_eval_command(**options)


# -- continual --------------------------------------------------------------------------------
@main.command()
@click.argument("suite")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Folder for results.jsonl and the reports; a rerun into it skips finished units.")
@device_option
@dtype_option
@catalog_option
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON line: the summary.")
@click.option("--report-only", is_flag=True, help="Run nothing: report the units already finished in DIR.")
def continual(suite, output, device, dtype, catalogs, as_json, report_only):
    """Learn a sequence of tasks with each strategy (a continual suite); report the accuracy matrix and forgetting."""
    options = dict(locals())
    from promptlab.commands.continual_learning import run_continual_command
    run_continual_command(**options)


# -- trained ----------------------------------------------------------------------------------
@main.group(cls=_Group)
def trained():
    """Trained artefacts (the seed-N folders of `fewshot --output`)."""


@trained.command("show")
@click.argument("folder", type=click.Path())
def trained_show(folder):
    """What an artefact holds: method, task, template, verbalizer, model, weights, results."""
    from promptlab.commands.trained import run_show_command
    run_show_command(folder=folder)


@trained.command("export-peft")
@click.argument("folder", type=click.Path())
@click.argument("output", type=click.Path())
def trained_export_peft(folder, output):
    """Write a soft prompt (FOLDER: a seed-N folder) as a PEFT prompt-tuning adapter in OUTPUT."""
    from promptlab.commands.trained import run_export_peft_command
    run_export_peft_command(folder=folder, output=output)


# -- templates --------------------------------------------------------------------------------
@main.group(cls=_Group)
def templates():
    """List, show, render and check templates."""


@templates.command("list")
@click.option("--task", default=None, help="Only this task.")
@catalog_option
def templates_list(task, catalogs):
    """Tasks with their templates and verbalizers."""
    catalog = _catalog(catalogs)
    for name in [task] if task else catalog.task_names():
        loaded = catalog.task(name)
        click.echo(f"{name}  labels: {', '.join(loaded.labels)}")
        for template_name, path in catalog.template_files(name).items():
            description = catalog.template(name, template_name).description
            click.echo(f"  template    {template_name:<14} {description}")
        for verbalizer_name in catalog.verbalizer_files(name):
            click.echo(f"  verbalizer  {verbalizer_name}")


@templates.command("show")
@click.option("--task", required=True)
@click.option("--template", required=True)
@catalog_option
def templates_show(task, template, catalogs):
    """Print a template file and where it comes from."""
    loaded = _catalog(catalogs).template(task, template)
    click.echo(f"# {loaded.path}\n# fields: {', '.join(sorted(loaded.fields))}")
    click.echo(loaded.source, nl=False)


@templates.command("render")
@click.option("--task", required=True)
@click.option("--template", required=True)
@click.option("--verbalizer", default=None)
@click.option("--data", type=click.Path(dir_okay=False), default=None)
@click.option("--split", default="test", show_default=True)
@click.option("-n", "count", type=click.IntRange(min=1), default=3, show_default=True)
@catalog_option
def templates_render(task, template, verbalizer, data, split, count, catalogs):
    """Show the exact text the model sees for the first examples, answer slot filled with each label word."""
    from promptlab.catalog.catalog import Setup
    from promptlab.kinds import kind_of
    setup = Setup.load(_catalog(catalogs), task, template, verbalizer)
    kind = kind_of(setup.task)
    examples = kind.examples(setup.task, split, data=data)
    for example in kind.prompt_inputs(examples)[:count]:
        prompt = setup.template.render(example)
        click.echo(f"--- example {example['id']} (gold: {example.get('label')})")
        click.echo(f"before slot: {prompt.before!r}\nafter slot:  {prompt.after!r}")
        for label, words in setup.verbalizer.words.items():
            click.echo(f"  {label}: " + " | ".join(repr(prompt.text(word)) for word in words))


@templates.command("check")
@click.option("--task", default=None, help="Only this task.")
@click.option("--model", default=None, help="Model whose tokenizer the label words are checked with "
                                            "[default: the --task's model:, else smollm2-135m].")
@catalog_option
def templates_check(task, model, catalogs):
    """Lint every template and verbalizer, and check the label words with a model's tokenizer."""
    from promptlab.commands.templates import run_check_command
    run_check_command(task=task, model=model, catalogs=catalogs)


# -- verbalizers ------------------------------------------------------------------------------
@main.group(cls=_Group)
def verbalizers():
    """Verbalizers: search label words automatically."""


@verbalizers.command("search")
@click.option("--task", required=True, help="Task name; its train split is the pool the k-shot sample comes from.")
@click.option("--template", default=None, help="Template name [default: the task's `template:`, else its only one].")
@click.option("--k", type=click.IntRange(min=1), default=16, show_default=True,
              help="Training examples per class; a dev set of k per class is drawn too (as fewshot draws them).")
@click.option("--seed", type=int, default=13, show_default=True, help="Sampling seed (fewshot's --seeds).")
@model_option
@click.option("--candidates", type=click.IntRange(min=1), default=20, show_default=True,
              help="Candidate words per label the assignment chooses from.")
@click.option("--words-per-label", type=click.IntRange(min=1), default=1, show_default=True,
              help="Words kept per label (combined with logsumexp).")
@click.option("--name", default=None, help="Verbalizer name [default: search-k{K}-seed{S}].")
@click.option("--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Catalog folder the file goes to (DIR/verbalizers/<task>/<name>.yaml); use it with --catalog DIR.")
@batch_size_option
@device_option
@dtype_option
@catalog_option
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON line of the results.")
def verbalizers_search(task, template, k, seed, model, candidates, words_per_label, name, output, batch_size, device,
                       dtype, catalogs, as_json):
    """Choose label words from k-shot examples (LM-BFF's automatic search) and write them as a verbalizer."""
    options = dict(locals())
    from promptlab.commands.verbalizers import run_search_command
    run_search_command(**options)


# -- monitor ----------------------------------------------------------------------------------
@main.command()
@click.option("--classifier", "classifiers", multiple=True, required=True, metavar="NAME=SPEC",
              help="A named classifier (repeatable): a trained artefact folder, or a zero-shot setup "
                   "TASK[:TEMPLATE][@MODEL]; an entity task or artefact adds the entities found.")
@click.option("--input", "input_path", required=True, metavar="FILE|DIR|-",
              help="JSONL/CSV/TSV documents: a file, a folder of them, or '-' (JSONL on standard input).")
@click.option("--time-field", required=True, help="The field holding each document's time (ISO 8601 or epoch).")
@click.option("--id-field", default="id", show_default=True, help="The field holding each document's id.")
@click.option("--text-field", default="text", show_default=True,
              help="The field entity classifiers and the report read.")
@click.option("--window", default="1d", show_default=True, help="Window length: 30m, 6h, 1d, 1w.")
@click.option("--follow", is_flag=True,
              help="Keep watching the folder (new files) or file (new lines) until SIGINT/SIGTERM.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds between looks at the input under --follow.")
@click.option("--alert", "alerts", multiple=True, metavar="RULE",
              help='An alert rule (repeatable), e.g. "sentiment=negative by=topic share>0.4 z>3 min=20".')
@click.option("--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for labelled.jsonl, windows.csv, alerts.jsonl and report.html; a run there resumes.")
@batch_size_option
@device_option
@dtype_option
@catalog_option
def monitor(classifiers, input_path, time_field, id_field, text_field, window, follow, poll, alerts, output,
            batch_size, device, dtype, catalogs):
    """Classify a stream of documents with several classifiers, count them per time window, raise alerts
    and write a report (docs/monitor.md)."""
    options = dict(locals())
    from promptlab.commands.monitoring import run_monitor_command
    run_monitor_command(**options)


@main.command("monitor-example")
@click.option("--output", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The JSONL stream to write.")
@click.option("--days", type=click.IntRange(min=2), default=30, show_default=True)
@click.option("--start", default="2026-01-01", show_default=True, help="The first day (ISO 8601 date).")
@click.option("--stories", type=click.IntRange(min=1), default=None,
              help="Use this many Reuters R8 test stories [default: all 2189].")
@click.option("--words", type=click.IntRange(min=5), default=60, show_default=True,
              help="Keep each story's first N words (a lead, as a news feed carries).")
@click.option("--burst-topic", default="crude", show_default=True, help="The topic the negative burst hits.")
@click.option("--burst-day", type=click.IntRange(min=1), default=21, show_default=True,
              help="The day of the burst (1: the first day).")
@click.option("--burst-size", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
def monitor_example(output, days, start, stories, words, burst_topic, burst_day, burst_size, seed):
    """Write an example stream for `monitor`: Reuters R8 test stories at times spread over DAYS (assigned, not
    real), with a burst of negative stories on one topic on one day."""
    options = dict(locals())
    from promptlab.commands.monitoring import run_example_command
    run_example_command(**options)


# -- models and data --------------------------------------------------------------------------
@main.group(cls=_Group)
def models():
    """Model aliases."""


@models.command("list")
def models_list():
    """Aliases and whether each is available on this machine."""
    from promptlab.backends.aliases import model_rows
    for row in model_rows():
        click.echo(f"{row['alias']:<14} {row['kind']:<7} {row['status']:<28} {row['description']}")


@main.group(cls=_Group)
def data():
    """Registered offline data sources."""


@data.command("list")
def data_list():
    """Sources, their labels, and whether they are prepared here."""
    from promptlab.data.sources import SOURCES, status
    for name, source in SOURCES.items():
        state = status(name)
        counts = ", ".join(f"{split} {n}" for split, n in state.get("counts", {}).items())
        click.echo(f"{name:<10} {'prepared' if state['prepared'] else 'not prepared':<13} {counts:<34} "
                   f"{source.description}")


@data.command("prepare")
@click.argument("names", nargs=-1)
def data_prepare(names):
    """Fetch sources once into the cache and make their seeded splits (all when none named)."""
    from promptlab.data.sources import SOURCES, prepare
    for name in names or SOURCES:
        click.echo(f"{name}: {prepare(name)}")


if __name__ == "__main__":
    main()
