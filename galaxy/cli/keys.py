"""`galaxy keys …`: CURVE keypairs for components and users.

A server admits a peer when the peer's public key (the ``.pub`` file) is in its KeyRing; the
secret half never leaves the machine it was made on.
"""

from __future__ import annotations

from pathlib import Path

from galaxy.errors import Conflict, InvalidInput


class KeyCommands:
    """CURVE keypairs: make one, show the public half of one."""

    def new(self, out: str, force: bool = False) -> None:
        """Write a new keypair to OUT (secret, mode 0600) and OUT.pub, and print the public key.

        Refuses to replace an existing OUT or OUT.pub unless --force is given.
        """
        from galaxy.mesh import Keypair

        if not isinstance(out, str) or not out:
            raise InvalidInput("name the key file to write", field="out")
        target = Path(out)
        pub = target.with_name(target.name + ".pub")
        if target.is_dir():
            raise InvalidInput(f"{out} is a directory; name a file", field="out")
        existing = [str(p) for p in (target, pub) if p.exists()]
        if existing and not force:
            raise Conflict(f"{' and '.join(existing)} already exist(s); pass --force to replace", field="out")
        keypair = Keypair.generate()
        keypair.save(target)
        print(keypair.public)

    def show(self, path: str) -> None:
        """Print the public key held in a key file or .pub file."""
        from galaxy.mesh import Keypair

        print(Keypair.load_public(path))
