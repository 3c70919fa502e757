export {
  localClusterPorts,
  localServerPorts,
  ROLE_NODE_FLAGS,
  startLocalCluster,
  type ClusterOptions,
  type ClusterPorts,
  type ClusterShape,
  type LocalCluster,
} from './cluster.ts';
export { findBinary, natsServerVersion, killProcess, startProcess, stopProcess, waitForPort, type Supervised } from './processes.ts';
