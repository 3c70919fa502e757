/**
 * What a process is doing right now, read from Linux's /proc: the files it has open and the
 * TCP connections it owns. The fault-injection run uses it to kill a worker at a chosen
 * moment (a mailbox worker while it writes a message, the outbound proxy that holds a given
 * SMTP connection) instead of at a random one.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';

/** The targets of a process's open file descriptors (paths, or `socket:[inode]`). */
export async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.filter(Boolean);
}

/** The inode of the TCP socket bound locally to `port` (the client side of a loopback connection). */
async function socketInode(port: number): Promise<string | undefined> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const row of rows) {
      const cols = row.trim().split(/\s+/);
      // local_address is "ADDR:PORT" in hex; the inode is the tenth column.
      if (cols[1]?.endsWith(`:${hex}`) && cols[9] && cols[9] !== '0') return cols[9];
    }
  }
  return undefined;
}

/** Which of `pids` owns the TCP connection whose local (client) port is `port`. */
export async function ownerOfConnection(pids: number[], port: number): Promise<number | undefined> {
  const inode = await socketInode(port);
  if (!inode) return undefined;
  for (const pid of pids) if ((await openFiles(pid)).includes(`socket:[${inode}]`)) return pid;
  return undefined;
}
