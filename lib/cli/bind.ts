// vfio bind <bdf>: bind a device to vfio-pci.
import { bindToVfioPci } from '../sysfs';
import { findDevice, oneBdf, type Command } from './common';

export const bind: Command = {
  name: 'bind',
  args: '<bdf>',
  summary: 'bind a device to vfio-pci',
  options: { force: 'even if another driver has it' },
  run(positionals, options) {
    const bdf = oneBdf(positionals, 'bind');
    findDevice(bdf);
    const cdev = bindToVfioPci(bdf, { force: options.force === true });
    console.log(`${bdf}: bound to vfio-pci${cdev ? `, cdev ${cdev}` : ' (no cdev: the kernel lacks CONFIG_VFIO_DEVICE_CDEV)'}`);
    return 0;
  },
};
