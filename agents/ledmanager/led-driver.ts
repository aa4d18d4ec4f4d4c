// Where the code is shown: a Linux LED through sysfs (<led>/brightness, with the
// kernel's trigger switched off so it does not fight us), or, on a device with no
// LED, the log: one line each time the code changes.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Led {
  /** Sets the light; called for every step of the pattern. */
  set(brightness: 0 | 1): void;
}

export class SysfsLed implements Led {
  private readonly brightness: string;
  private last: 0 | 1 | undefined;

  /** dir: /sys/class/leds/<name> (or a stand-in with the same files). */
  constructor(dir: string) {
    this.brightness = path.join(dir, 'brightness');
    if (!fs.existsSync(this.brightness)) throw new Error(`${dir} is not an LED: it has no brightness file`);
    const trigger = path.join(dir, 'trigger');
    if (fs.existsSync(trigger)) fs.writeFileSync(trigger, 'none');
  }

  set(brightness: 0 | 1): void {
    if (brightness === this.last) return; // a dark pause after a dark blink: no write
    fs.writeFileSync(this.brightness, String(brightness));
    this.last = brightness;
  }
}

/** No LED: nothing blinks; the code is logged when it changes (see Blinker.onCode). */
export class NoLed implements Led {
  set(): void {}
}
