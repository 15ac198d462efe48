"""The twin's record of its pumps as FHIR R4 resources (pure mapping; the routes are ``twin.api.fhir``).

Built and validated with ``fhir.resources`` (its R4B models: see :mod:`twin.fhir.mapping` for why R4B serves
R4 here), coded with IEEE 11073-10101 where a term exists (:mod:`twin.fhir.codes`).
"""
