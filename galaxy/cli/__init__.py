"""The `galaxy` command line: noun then verb (``galaxy job submit``), one module per noun.

Every verb is one SDK (or local library) call plus printing; errors become one line on stderr and a
non-zero exit status.
"""
