export { SHADOW_EPOCH_KEY, ShadowStore, ShadowUnavailableError, rebuildShadowFromEvents } from './shadow.ts';
