/**
 * vfio: drive Linux VFIO devices from Node.js through the device cdev and iommufd.
 * @packageDocumentation
 */
export { VfioError, VfioStateError } from './errors';
export type { VfioErrorFields, VfioStateCode } from './errors';
export { constants } from './constants';
export { listPciDevices, mdevDevice, cdevPathFor, bindToVfioPci, unbindFromVfioPci, normalizeBdf } from './sysfs';
export type { PciDeviceInfo, MdevDeviceInfo, BindOptions } from './sysfs';
export { Iommufd, Hwpt } from './iommufd';
export type { HwInfo, IommufdOptionName } from './iommufd';
export { IoAddressSpace } from './ioas';
export type { DmaMemory, MapOptions, MapFileOptions, IovaRange } from './ioas';
export { DmaBuffer } from './dma-buffer';
export type { DmaBufferOptions, SharedDmaBuffer } from './dma-buffer';
export { VfioDevice, Region, MappedRegion, PciConfig } from './device';
export type { SharedMappedRegion } from './region';
export type {
  DeviceState, DeviceOpenOptions, DeviceFromFdOptions, DeviceInfo, RegionInfo, IrqInfo, ProbeReport,
  InfoCapability, HotResetInfo, HotResetDevice, FeatureOptions, IrqIndexName,
} from './device';
export { Interrupts } from './interrupts';
export { IoEventFd } from './ioeventfd';
export type { IoEventFdOptions } from './ioeventfd';
export type { InterruptEvent, WaitOptions } from './interrupts';
export { VfioContainer, VfioGroup } from './group';
