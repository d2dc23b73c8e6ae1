"""``galaxy job …``: verbs on jobs. ``validate`` and ``template`` work offline, from the job file alone."""

from __future__ import annotations

import json
import sys
from typing import Any

from galaxy.errors import InvalidInput
from galaxy.spec import TEMPLATE, SpecError, dump_yaml, load_job_file

OUTPUT_FORMATS = ("yaml", "json")


def render(data: Any, output: str) -> str:
    """Plain data as the chosen output format: ``yaml`` (block style, field order kept) or ``json``."""
    if output == "json":
        return json.dumps(data, indent=2)
    return dump_yaml(data)


def print_spec_errors(err: SpecError) -> None:
    """Every error of a job file, one ``path: message`` per line on stderr."""
    for item in err.errors:
        print(str(item), file=sys.stderr)


class JobCommands:
    """Jobs: write a job file (template), check it (validate)."""

    def validate(self, file: str, output: str = "yaml") -> None:
        """Check a job file and print it normalised (every default filled in, sizes in bytes, durations in
        seconds), or print each problem as `field: message` and exit 1.

        Args:
            file: the job file (YAML or JSON).
            output: yaml or json.
        """
        if output not in OUTPUT_FORMATS:
            raise InvalidInput(f"--output must be one of {', '.join(OUTPUT_FORMATS)}, got {output!r}",
                               field="output")
        try:
            spec = load_job_file(str(file))
        except SpecError as err:
            print_spec_errors(err)
            raise SystemExit(1) from None
        sys.stdout.write(render(spec.to_dict(), output))
        if output == "json":
            sys.stdout.write("\n")

    def template(self) -> None:
        """Print a job file with every field and a comment on each: a starting point for your own."""
        sys.stdout.write(TEMPLATE)
