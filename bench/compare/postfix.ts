/**
 * A private Postfix instance for `npm run bench:compare`: its own config_directory,
 * queue_directory and data_directory under a temporary directory, smtpd on one loopback
 * port, every message relayed to the sink. The system instance (/etc/postfix) is never
 * configured, started or stopped: every command gets `-c <config_directory>`.
 */
import { execFile, spawn } from 'node:child_process';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Installs Debian's postfix package (smtp-source and smtp-sink come with it) when missing, without configuring the system instance. */
export async function ensurePostfix(): Promise<void> {
  const have = ['/usr/sbin/postfix', '/usr/sbin/postconf', '/usr/sbin/smtp-source', '/usr/sbin/smtp-sink'].every((p) => existsSync(p));
  if (have) return;
  const preseed = 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections';
  const install = 'DEBIAN_FRONTEND=noninteractive apt-get install -y postfix';
  if (userInfo().uid !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error(`Postfix is not installed. Install it as root, without configuring the system instance:\n  ${preseed}\n  ${install}`);
  }
  console.log('bench:compare: installing Debian\'s postfix package ("No configuration": the system instance stays unconfigured and stopped)');
  await run('sh', ['-c', preseed]);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await run('apt-get', ['install', '-y', '-qq', 'postfix'], { env, maxBuffer: 16 * 2 ** 20 });
  } catch {
    await run('apt-get', ['update', '-qq'], { env, maxBuffer: 16 * 2 ** 20 });
    await run('apt-get', ['install', '-y', '-qq', 'postfix'], { env, maxBuffer: 16 * 2 ** 20 });
  }
}

export async function postfixVersion(): Promise<string> {
  try {
    return (await run('/usr/sbin/postconf', ['-d', '-h', 'mail_version'])).stdout.trim();
  } catch {
    return '?';
  }
}

export type PostfixInstance = { configDir: string; port: number; masterPid(): Promise<number | undefined>; maillog: string; stop(): Promise<void> };

const MASTER_CF = (port: number) => `# A private instance for bench:compare: smtpd on one loopback port, nothing chrooted.
127.0.0.1:${port} inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
local      unix  - n n -     - local
virtual    unix  - n n -     - virtual
lmtp       unix  - - n -     - lmtp
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`;

const MAIN_CF = (dir: string, sinkHost: string, sinkPort: number) => `# A private instance for bench:compare; never the system one.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [${sinkHost}]:${sinkPort}
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
biff = no
# Postfix logs every message, as it would to syslog; this machine has no syslog daemon, so
# postlogd writes the file (its CPU is in Postfix's figure).
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
`;

async function postfixCommand(configDir: string, verb: string, opts: { procsFile?: string } = {}): Promise<{ ok: boolean; output: string }> {
  // With procsFile the shell moves itself into the meter's cgroup first, so master and
  // every process it ever forks are counted from birth.
  const script = opts.procsFile ? `echo $$ > "$1" && exec /usr/sbin/postfix -c "$2" ${verb}` : `exec /usr/sbin/postfix -c "$2" ${verb}`;
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', script, 'sh', opts.procsFile ?? '', configDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => void (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, output: output.trim() });
    });
  });
}

/** Writes the instance's configuration under `dir` and starts it; `procsFile` puts it in a cgroup. */
export async function startPostfix(dir: string, port: number, sink: { host: string; port: number }, procsFile: string | undefined): Promise<PostfixInstance> {
  const configDir = join(dir, 'etc');
  await Promise.all(['etc', 'queue', 'data'].map((d) => mkdir(join(dir, d), { recursive: true })));
  const { uid, gid } = await postfixIds();
  await chown(join(dir, 'data'), uid, gid);
  await writeFile(join(configDir, 'main.cf'), MAIN_CF(dir, sink.host, sink.port));
  await writeFile(join(configDir, 'master.cf'), MASTER_CF(port));
  const maillog = join(dir, 'maillog');
  const masterPid = () => masterPidAt(dir);
  // postconf reads back what the instance will use: a typo would otherwise relay elsewhere.
  const effective = (await run('/usr/sbin/postconf', ['-c', configDir, '-h', 'queue_directory', 'relayhost', 'inet_interfaces'])).stdout.trim().split('\n');
  if (effective[0] !== join(dir, 'queue') || effective[1] !== `[${sink.host}]:${sink.port}` || effective[2] !== '127.0.0.1') {
    throw new Error(`postconf -c ${configDir} reads ${effective.join(', ')}`);
  }
  const why = async () => {
    const check = await postfixCommand(configDir, '-v check');
    const log = await readFile(maillog, 'utf8').catch(() => '');
    return `${check.output
      .split('\n')
      .filter((l) => /fatal|error|warning/.test(l))
      .join('\n')}\n${log.slice(-1500)}`;
  };
  const check = await postfixCommand(configDir, 'check');
  if (!check.ok) throw new Error(`postfix -c ${configDir} check failed: ${check.output}${await why()}`);
  const instance: PostfixInstance = { configDir, port, maillog, masterPid, stop: () => stopPostfixAt(dir) };
  const starting = postfixCommand(configDir, 'start', procsFile ? { procsFile } : {});
  startsInFlight.set(dir, starting);
  const started = await starting.finally(() => startsInFlight.delete(dir));
  if (!started.ok) {
    await instance.stop();
    throw new Error(`postfix -c ${configDir} start failed: ${started.output}${await why()}`);
  }
  const deadline = Date.now() + 15_000;
  while (!(await masterPid()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (!(await masterPid())) throw new Error(`postfix -c ${configDir} start: no master.pid after 15 s${await why()}`);
  return instance;
}

async function masterPidAt(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'queue', 'pid', 'master.pid'), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  // Only Postfix's master: a stale pid file must not name some other process.
  const comm = pid > 0 ? await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '') : '';
  return comm.trim() === 'master' ? pid : undefined;
}

/** `postfix start` commands not finished yet: a stop waits for them, or a master started meanwhile would be left running. */
const startsInFlight = new Map<string, Promise<unknown>>();

/** Stops the instance under `dir` if it runs (`postfix -c <dir>/etc stop`, then its master by PID); safe to call at any time. */
export async function stopPostfixAt(dir: string): Promise<void> {
  await startsInFlight.get(dir);
  const pid = await masterPidAt(dir);
  if (pid === undefined) return;
  await postfixCommand(join(dir, 'etc'), 'stop');
  // `postfix stop` waits for master; if it is still there, end it by its own PID.
  const deadline = Date.now() + 15_000;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if ((await masterPidAt(dir)) === pid) process.kill(pid, 'SIGKILL');
}

async function postfixIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const entry = passwd.split('\n').find((l) => l.startsWith('postfix:'));
  if (!entry) throw new Error('no postfix user (the postfix package creates it)');
  const f = entry.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
