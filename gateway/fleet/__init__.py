"""Fleet mode and operator controls (docs/fleet.md).

- `controls`: disable/enable a provider and reset every breaker, the same in one process or a fleet;
- `registry`: the Redis call registry (calls, replica liveness, draining), heartbeats, outage handling;
- `bus`: the Redis control channel (operator actions and shared breaker advisories reach every replica);
- `forward`: admin commands for a call held by another replica, sent to its owner over HTTP;
- `admin_api`: the operator endpoints that know about the fleet.

Without `VG_REDIS_URL` only `controls` runs and nothing touches Redis.
"""
