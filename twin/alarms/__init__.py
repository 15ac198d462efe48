"""The twin's alarm system: the ISA-18.2 lifecycle with IEC 60601-1-8 priorities (``lifecycle``)
and ISA-18.2 alarm-load figures per site (``load``). Both pure; persistence is ``twin.store``."""
