export { SHADOW_EPOCH_KEY, ShadowStore, ShadowUnavailableError, rebuildShadowFromEvents } from './shadow.ts';
export { Leases, type Claim, type LeaseOptions, type WorkRef } from './leases.ts';
