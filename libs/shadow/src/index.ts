export { SHADOW_EPOCH_KEY, ShadowStore, ShadowUnavailableError, rebuildShadowFromEvents } from './shadow.ts';
export { Leases, listLeases, type Claim, type LeaseOptions, type LeasedRef, type WorkRef } from './leases.ts';
