export {
  AUTH_MECHANISMS,
  PERMISSION_GROUPS,
  acceptedDomainSchema,
  mailboxSchema,
  organizationConfigSchema,
  receiveConnectorSchema,
  sendConnectorSchema,
  transportSettingsSchema,
  type AcceptedDomain,
  type AuthMechanism,
  type Mailbox,
  type OrganizationConfig,
  type PermissionGroup,
  type ReceiveConnector,
  type SendConnector,
  type TransportSettings,
} from './schema.ts';
export { ConfigError, loadOrganizationConfig, parseOrganizationConfig, parseOrganizationYaml } from './load.ts';
export { runtimeSettings, type RuntimeSettings } from './runtime.ts';
