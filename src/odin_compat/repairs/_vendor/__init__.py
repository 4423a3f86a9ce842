"""Upstream code that odin puts back, copied faithfully, one module per upstream release.

Each module's header names its source release and file. A module may import its library (and
torch) at the top: only a record's provider imports it, when that library is already loading.
"""
