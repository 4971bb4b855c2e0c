// The upstream selftest files this port does not cover yet, and why (none now); test/lab/suite.mjs
// prints them with each kernel's counts. The one test checks that the list matches the upstream
// tree's files the port knows of, so a newly ported file is taken off it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { notPorted } from './modes.mjs';

// Every file is ported now; a new upstream file goes here, with why, until it is.
const NOT_PORTED = {};
const UPSTREAM = ['vfio_dma_mapping_mmio_test', 'vfio_dma_mapping_test', 'vfio_iommufd_setup_test',
  'vfio_pci_device_init_perf_test', 'vfio_pci_device_test', 'vfio_pci_driver_test', 'vfio_pci_sriov_uapi_test',
  'iommufd'];

for (const [file, why] of Object.entries(NOT_PORTED)) notPorted(file, why);

test('every upstream selftest file (tools/testing/selftests/vfio/*.c, iommu/iommufd.c) is ported here or listed as not ported', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const ported = fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs')).map((f) => f.replace('.test.mjs', ''));
  for (const f of UPSTREAM) {
    assert.ok(ported.includes(f) !== (f in NOT_PORTED), `${f}: ported (${ported.includes(f)}) or listed (${f in NOT_PORTED}), not both or neither`);
  }
});
