/**
 * vfio: drive Linux VFIO devices from Node.js through the device cdev and iommufd.
 * @packageDocumentation
 */
export { VfioError, VfioStateError, VfioUnsupportedError } from './errors';
export type { VfioErrorFields, VfioStateCode, VfioUnsupportedCode } from './errors';
export { constants } from './constants';
export type { VfioFlags } from './constants';
export {
  listPciDevices, mdevDevice, cdevPathFor, bindToVfioPci, unbindFromVfioPci, normalizeBdf, createMdev, removeMdev, mdevTypes,
  sriovTotalVfs, setSriovNumVfs, virtfnsOf, physfnOf,
} from './sysfs';
export type { PciDeviceInfo, MdevDeviceInfo, MdevType, BindOptions } from './sysfs';
export { socketPair, sendFds, receiveFds } from './fd-passing';
export type { PassableFd, ReceiveFdsOptions, ReceivedFds } from './fd-passing';
export { Iommufd, Hwpt, HwQueue, Viommu, Vdevice } from './iommufd';
export type { IommufdObject } from './iommufd';
export type { HwInfo, HwInfoOptions, HwptOptions, DirtyBitmapOptions, IommufdDevice, IommufdOptionName } from './iommufd';
export { FaultQueue, VeventQueue } from './event-queue';
export type { IommuFault, IommuVevent, FaultResponse } from './event-queue';
export { IoAddressSpace } from './ioas';
export type { DmaMemory, MapOptions, MapFileOptions, IovaRange, PhysicalRange } from './ioas';
export { DmaBuffer } from './dma-buffer';
export type { DmaBufferOptions, SharedDmaBuffer } from './dma-buffer';
export { VfioDevice, Region, MappedRegion, PciConfig } from './device';
export type { LowPower } from './device';
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
export type { Type1Info } from './decoders';
