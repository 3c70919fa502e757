export { ROLE_NODE_FLAGS, startLocalCluster, type ClusterOptions, type LocalCluster } from './cluster.ts';
export { findBinary, natsServerVersion, killProcess, startProcess, stopProcess, waitForPort, type Supervised } from './processes.ts';
