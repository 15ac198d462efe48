"""Scale-out: sites hashed into partitions, partitions spread over the live replicas by rendezvous
hashing, and the leases that give each partition one owner at a time. The hashing and the lease
decisions are pure (:mod:`twin.cluster.partitions`, :mod:`twin.cluster.leases`); the loop that
acts on them against a :class:`~twin.store.protocol.LeaseStore` is :mod:`twin.cluster.keeper`.
"""
