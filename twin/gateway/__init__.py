"""The gateway for real pumps: interrogation read-outs in, contract messages out.

Implanted pumps have no network link; a clinician programmer reads them at each visit. A read-out
(one interrogation of one pump, :mod:`twin.gateway.readout`) is a file the gateway checks
(:mod:`twin.gateway.readout_file`), turns into the contract's birth, alarm events, state and status
(:mod:`twin.gateway.publication`, pure) and publishes over MQTT (:mod:`twin.gateway.publisher`), once
per file or for every file dropped into a folder (:mod:`twin.gateway.inbox`).
"""
