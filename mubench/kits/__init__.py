"""Conformance kits a plugin author runs in their tests: check_method, check_attack, check_task, and the toy cell they use."""
