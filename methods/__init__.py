"""Unlearning methods (installed as `mubench.methods`): one file per method, each registered by name.

Built-ins are declared in `mubench.unlearn.api.METHODS`; a test checks every file here is declared there.
"""
