"""Usage lines in the usual CLI style: ``secureflow job status [OPTIONS] JOB_ID``.

typer (0.29) writes a required argument as ``{job_id}`` in usage lines and help; this shows arguments as
shell manuals do, by their upper-case name (``JOB_ID``, optional ones ``[NAME]``), in usage lines, in the
help's argument table and in errors ("Missing argument 'JOB_ID'"). Applied once, when the CLI is imported.
"""

from __future__ import annotations

from typer.core import TyperArgument


def _display_name(self: TyperArgument) -> str:
    return self.metavar if self.metavar is not None else str(self.name or "").upper()


def _usage_name(self: TyperArgument) -> str:
    name = _display_name(self)
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


TyperArgument.display_name_raw = property(_display_name)  # type: ignore[assignment,method-assign]
TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
