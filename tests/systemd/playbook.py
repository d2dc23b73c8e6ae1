"""The agent role's systemd path, carried out from the role's own files with Ansible's template engine.

`ansible-playbook` itself is too slow for the guest (QEMU without KVM runs Python ~10x slower, and
every module of a task is a new interpreter: the agent role alone took over 5 minutes there). So this
module does what the role's systemd tasks do, reading everything from the role: the variables (the
common and agent roles' defaults, the `vars:` the agent role passes to common/daemon.yml, then the
test's overrides, as extra vars would), each task's `when:`, `dest:`, `src:` and `content:`, and the
arguments of its `systemd_service` tasks, rendered by Ansible's Templar. The service manager comes from
Ansible's own fact collector, as `gather_facts` would give it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "ansible" / "roles"


class _FactModule:
    """What ServiceMgrFactCollector asks of an Ansible module."""

    def get_bin_path(self, name: str, required: bool = False, opt_dirs: Any = None) -> str | None:
        return shutil.which(name)

    def run_command(self, args: Any, use_unsafe_shell: bool = False, **_kw: Any) -> tuple[int, str, str]:
        done = subprocess.run(args, shell=use_unsafe_shell or isinstance(args, str), capture_output=True,
                              text=True)
        return done.returncode, done.stdout, done.stderr


def service_mgr() -> str:
    from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

    facts = ServiceMgrFactCollector().collect(module=_FactModule(), collected_facts={
        "ansible_system": "Linux", "ansible_distribution": "Debian"})
    return str(facts["service_mgr"])


class AgentRole:
    def __init__(self, overrides: dict[str, Any], hostname: str) -> None:
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar, trust_as_template

        from ansible import constants

        self.trust = trust_as_template
        self.loader = DataLoader()
        load = self._load
        self.tasks: list[dict[str, Any]] = load("agent/tasks/main.yml")
        self.daemon_tasks: list[dict[str, Any]] = load("common/tasks/daemon.yml")
        run = self.task("Run the Agent")
        self.facts = {"service_mgr": service_mgr()}
        variables = {**load("common/defaults/main.yml"), **load("agent/defaults/main.yml"), **run["vars"],
                     "ansible_facts": self.facts, "inventory_hostname": hostname,
                     "ansible_managed": getattr(constants, "DEFAULT_MANAGED_STR", "Ansible managed"),
                     **overrides}
        self.templar = Templar(loader=self.loader, variables=variables)

    def _load(self, path: str) -> Any:
        return self.loader.load_from_file(str(ROLES / path), trusted_as_template=True)

    def task(self, name: str, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        for task in tasks if tasks is not None else self.tasks:
            if str(task["name"]).startswith(name):
                return task
        raise AssertionError(f"no task {name!r} in the role")

    def value(self, expr: Any) -> Any:
        if isinstance(expr, str):
            return self.templar.template(self.trust(expr))
        return self.templar.template(expr)

    def var(self, name: str) -> Any:
        return self.value("{{ " + name + " }}")

    def when(self, task: dict[str, Any]) -> bool:
        cond = task.get("when", True)
        return bool(self.value("{{ " + cond + " }}")) if isinstance(cond, str) else bool(cond)

    def _write(self, dest: str, text: str, mode: str) -> bool:
        path = Path(dest)
        old = path.read_text() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, int(mode, 8))
        return old != text

    def template(self, task: dict[str, Any], role: str) -> bool:
        args = task["ansible.builtin.template"]
        src = self.loader.get_text_file_contents(str(ROLES / role / "templates" / self.value(args["src"])))
        return self._write(self.value(args["dest"]), self.value(src), self.value(args["mode"]))

    def copy(self, task: dict[str, Any]) -> bool:
        args = task["ansible.builtin.copy"]
        return self._write(self.value(args["dest"]), self.value(args["content"]), self.value(args["mode"]))

    def systemd_service(self, task: dict[str, Any], changed: bool, log: list[str]) -> None:
        """What ansible.builtin.systemd_service does with the task's arguments, by systemctl."""
        args = task["ansible.builtin.systemd_service"]
        # the role's expressions read `<registered> is changed`: give them the registered result
        self.templar.available_variables = {**self.templar.available_variables,
                                            **{name: {"changed": changed} for name in self._registered()}}
        name = self.value(args["name"])
        steps = []
        if self.value(args.get("daemon_reload", False)):
            steps.append(["daemon-reload"])
        if self.value(args.get("enabled", False)):
            steps.append(["enable", name])
        state = self.value(args.get("state", ""))
        if state:
            steps.append([{"started": "start", "restarted": "restart", "stopped": "stop"}[state], name])
        for step in steps:
            done = subprocess.run(["systemctl", *step], capture_output=True, text=True, timeout=300)
            log.append(f"systemctl {' '.join(step)} -> {done.returncode} {done.stderr.strip()}")
            assert done.returncode == 0, log

    def _registered(self) -> list[str]:
        return [t["register"] for t in self.tasks + self.daemon_tasks if "register" in t]

    def apply(self) -> list[str]:
        """The agent role's tasks that matter under systemd, in the role's order; returns what it did."""
        log: list[str] = []
        Path(self.var("agent_state_dir")).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.template(self.task("Write the Agent config"), "agent")
        holder_unit = self.task("Install the systemd unit holding")
        holder_start = self.task("Start the unit holding")
        if self.when(holder_unit):
            changed = self.copy(holder_unit)
            log.append(f"wrote {self.value(holder_unit['ansible.builtin.copy']['dest'])}")
            assert self.when(holder_start)
            self.systemd_service(holder_start, changed, log)
        # common/daemon.yml with the agent role's vars (already in the variables)
        for task in self.daemon_tasks:
            if not self.when(task):
                continue
            if "ansible.builtin.template" in task and "unit" in task["name"]:
                changed = self.template(task, "common")
                log.append(f"wrote {self.value(task['ansible.builtin.template']['dest'])}")
            elif "ansible.builtin.systemd_service" in task:
                self.systemd_service(task, changed, log)
            elif "ansible.builtin.command" in task:   # the health check: the Agent has none
                assert not self.var("galaxy_daemon_health"), task["name"]
            else:
                raise AssertionError(f"daemon.yml task {task['name']!r} runs under systemd: teach this test")
        return log
