#!/usr/bin/env node
// A privileged helper for an unprivileged driver: opens the device's VFIO cdev and /dev/iommu
// as root, starts the driver as another user with a Unix socket as its fd 3, and sends it the two
// open fds (SCM_RIGHTS). The driver needs no access to the nodes and no root:
//
//   const { fds } = receiveFds(3, { timeoutMs: 10_000 });
//   const dev = VfioDevice.fromFd(fds[0], { own: true });
//   const iommufd = Iommufd.fromFd(fds[1], { own: true });
//   dev.bind(iommufd); ...
//
// usage: node examples/fd-helper.mjs --uid N [--gid N] <bdf> -- <command> [args...]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Iommufd, VfioDevice, sendFds, socketPair } from 'vfio';

function usage(message) {
  console.error(`fd-helper: ${message}\nusage: node examples/fd-helper.mjs --uid N [--gid N] <bdf> -- <command> [args...]`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
if (dash < 0 || dash === argv.length - 1) usage('no command after --');
const own = argv.slice(0, dash);
const command = argv.slice(dash + 1);
const opt = (name) => {
  const i = own.indexOf(name);
  if (i < 0) return undefined;
  const value = Number(own.splice(i, 2)[1]);
  if (!Number.isInteger(value) || value < 0) usage(`${name} takes a number`);
  return value;
};
const uid = opt('--uid');
const gid = opt('--gid') ?? uid;
if (uid === undefined) usage('--uid is required: the driver runs as that user');
if (own.length !== 1) usage('exactly one <bdf>');

const iommufd = Iommufd.open();
const dev = VfioDevice.open(own[0]);
const [mine, theirs] = socketPair();
const child = spawn(command[0], command.slice(1), { stdio: ['inherit', 'inherit', 'inherit', theirs], uid, gid });
fs.closeSync(theirs);
child.on('error', (err) => {
  console.error(`fd-helper: cannot start ${command[0]}: ${err.message}`);
  process.exit(1);
});
sendFds(mine, [dev, iommufd], JSON.stringify({ bdf: own[0], fds: ['device', 'iommufd'] }));
// The driver has its own copies now; the helper keeps nothing open.
dev.close();
iommufd.close();
fs.closeSync(mine);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
