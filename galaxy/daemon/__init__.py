"""What every Galaxy daemon shares: its config file (`config`), its keys (`keys`), the command-line
entry (`main`) and, for ResMan and AppMaster, the replicated-leader loop (`replica`): campaign in
ZooKeeper, serve only while leading, step down at once on loss.

Submodules are imported by name (`galaxy.daemon.config`), so a tool that only reads a config file does
not pull in the mesh or ZooKeeper."""
