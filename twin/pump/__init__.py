"""The pump model shared by the simulator (``twin.sim``) and the twin's prediction (``twin.mirror``).

Pure: no I/O, no clock, no global random generator."""
