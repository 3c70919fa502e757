export { SHADOW_EPOCH_KEY, LeaseStore, ShadowUnavailableError, rebuildShadowFromEvents } from './store.ts';
export { Leases, listLeases, type Claim, type LeaseOptions, type LeasedRef, type WorkRef } from './leases.ts';
export { DeliveryShadow, RecentShadows, SHADOWS_KEY, type ShadowEntry } from './shadow.ts';
