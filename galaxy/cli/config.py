"""``galaxy config …``: which cluster the CLI talks to, and writing the file that says so."""

from __future__ import annotations

import os

from galaxy.cli.output import check_output, emit, fields


class ConfigCommands:
    """The client configuration: ~/.galaxy/config (or $GALAXY_CONFIG) with GALAXY_* overrides."""

    def show(self, output: str = "table") -> None:
        """Print the configuration in effect and where each value comes from (file or variable)."""
        from galaxy.sdk.config import config_path, load_config

        check_output(output)
        config = load_config()
        data = {**config.to_dict(), "sources": dict(config.sources), "file": str(config_path())}
        emit(data, output, lambda d: fields([
            (name, f"{d[name]}  ({d['sources'].get(name, 'default')})")
            for name in ("cluster", "zookeeper", "zookeeper_ca", "key", "timeout") if name in d]
            + [("file", d["file"])]))

    def init(self, cluster: str, zookeeper: str, key: str, timeout: float = 10.0, path: str = "",
             force: bool = False, zookeeper_ca: str = "") -> None:
        """Write a config file (default ~/.galaxy/config or $GALAXY_CONFIG) naming CLUSTER, ZOOKEEPER and KEY.

        --zookeeper_ca names the cluster's ZooKeeper CA certificate when ZooKeeper serves TLS (the
        playbook's and `make demo`'s do). Refuses to replace an existing file without --force.
        """
        from galaxy.coord import check_ca_file
        from galaxy.sdk.config import ClientConfig, config_path, write_config

        ca = check_ca_file(os.path.abspath(os.path.expanduser(zookeeper_ca)), "zookeeper_ca") if zookeeper_ca else None
        config = ClientConfig(cluster=str(cluster), zookeeper=str(zookeeper),
                              key=os.path.abspath(os.path.expanduser(str(key))), timeout=float(timeout),
                              zookeeper_ca=ca)
        written = write_config(path or config_path(), config, force=force)
        print(f"wrote {written}")
