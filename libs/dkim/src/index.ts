export {
  DEFAULT_SELECTORS,
  DkimError,
  RSA_KEY_SIZES,
  activeKey,
  checkDomain,
  generateKey,
  newSigningConfig,
  privateKeyOf,
  rotate,
  seal,
  txtRecord,
  unseal,
  zoneLine,
  type DkimAlgorithm,
  type DkimKey,
  type DkimSigningConfig,
  type NewConfigOptions,
} from './keys.ts';
export { DkimStore, DkimWatcher } from './store.ts';
export { DkimSigner, configsOf, fromDomain, signingCandidates, withSignature, type Signature, type SigningConfigs } from './sign.ts';
export { dkimRow, runDkimRequest, zoneLines, type DkimRequest, type DkimResult, type DkimRow } from './request.ts';
