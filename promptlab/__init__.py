"""promptlab: prompt learning and few/zero-shot text classification.

The Python API (promptlab.api, docs/python.md) is imported on first use, so `import promptlab` and the
CLI's light commands stay free of torch:

    import promptlab
    clf = promptlab.Classifier(task="sentiment", template="t1")
    clf.predict(["a gripping film", "a dull mess"])
"""
from promptlab.errors import UserError

__version__ = "0.1.0"
__all__ = ["Classifier", "FewshotResult", "PromptlabError", "UserError", "evaluate", "fewshot", "load"]
_API = ("Classifier", "FewshotResult", "evaluate", "fewshot", "load")

PromptlabError = UserError  # the one exception type of user mistakes; its message is the CLI's


def __getattr__(name: str):
    if name in _API:
        from promptlab import api
        return getattr(api, name)
    raise AttributeError(f"module 'promptlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
