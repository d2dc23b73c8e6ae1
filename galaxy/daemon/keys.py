"""The trusted-keys directory: one `<name>.pub` file per component or user that may connect.

Named files, not a list in the config, so that Ansible (or an operator) can hand out and revoke a key
by adding or deleting one file; daemons re-read it on SIGHUP. Only the keys that came from the
directory are managed here: keys a daemon adds at run time (the AppMaster's per-job worker keys)
survive a reload.

A key being rotated is two files while the roll lasts: `<name>.pub` (the new key) and
`<name>@previous.pub` (the old one). Both carry the name `<name>` — one principal — so a daemon
restarted with the new key keeps its identity (galaxy/mesh/server.py), and one not yet restarted
still connects; deleting `<name>@previous.pub` ends the old key.
"""

from __future__ import annotations

from pathlib import Path

from galaxy.errors import InvalidInput
from galaxy.mesh import Keypair, KeyRing


class TrustedKeys:
    def __init__(self, directory: str, keyring: KeyRing | None = None) -> None:
        self.directory = directory
        self.keyring = keyring if keyring is not None else KeyRing()
        self._from_files: dict[str, str] = {}   # public key -> name, as last loaded
        self.reload()

    def reload(self) -> int:
        """Apply the directory as it is now; returns the number of keys it holds."""
        path = Path(self.directory)
        if not path.is_dir():
            raise InvalidInput(f"trusted keys directory {self.directory} does not exist", field="trusted_keys")
        wanted: dict[str, str] = {}
        for pub in sorted(path.glob("*.pub")):
            wanted[Keypair.load_public(str(pub))] = key_name(pub.name)
        for key in self._from_files.keys() - wanted.keys():
            self.keyring.remove(key)
        for key, name in wanted.items():
            if self.keyring.name_of(key) != name:
                self.keyring.add(key, name)
        self._from_files = wanted
        return len(wanted)


def key_name(file_name: str) -> str:
    """The ring name of a trusted-key file: `agent-h3.pub` and `agent-h3@previous.pub` are both `agent-h3`."""
    return file_name.removesuffix(".pub").split("@", 1)[0]


def load_keyring(directory: str) -> KeyRing:
    """A KeyRing holding the directory's keys (for tools that never reload)."""
    return TrustedKeys(directory).keyring
