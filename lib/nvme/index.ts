/**
 * vfio/nvme: a userspace NVMe driver over the vfio core (bring-up, admin commands, namespaces,
 * I/O queue pairs with PRP lists, completions by MSI-X or polling).
 * @packageDocumentation
 */
export { NvmeController } from './controller';
export type { NvmeIdentity, NvmeNamespace, NvmeOpenOptions } from './controller';
export { NvmeQueuePair } from './queue-pair';
export type { QueuePairOptions, SharedNvmeQueuePair } from './queue-pair';
export type { Done as NvmeCallback, RingState } from './queue';
export { NvmeError, statusName } from './spec';
