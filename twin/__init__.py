"""PumpTwin: a digital-twin service for implantable intrathecal drug-delivery pumps."""

__version__ = "0.1.0"
