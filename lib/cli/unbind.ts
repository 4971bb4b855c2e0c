// vfio unbind <bdf>: give a device back from vfio-pci to its own driver.
import { unbindFromVfioPci } from '../sysfs';
import { findDevice, oneBdf, type Command } from './common';

export const unbind: Command = {
  name: 'unbind',
  args: '<bdf>',
  summary: 'unbind a device from vfio-pci and give it back to its own driver',
  options: {},
  run(positionals) {
    const bdf = oneBdf(positionals, 'unbind');
    findDevice(bdf);
    const driver = unbindFromVfioPci(bdf);
    console.log(`${bdf}: unbound from vfio-pci${driver ? `, now bound to ${driver}` : ', no driver'}`);
    return 0;
  },
};
