"""Galaxy: a data-center operating system.

Two layers, each master/standby: the resource layer (ResMan + one Agent per host) places and keeps
containers; the service layer (AppMaster + one AppWorker per container) deploys, runs and updates
services in them. See README.md and docs/ for the system as built.
"""

__version__ = "0.1.0"
