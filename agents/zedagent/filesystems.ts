// Which filesystems a device reports, and how much storage it has: pure rules
// over the mounts systeminformation lists (used by the hardware snapshot and by
// the metrics builder alike).

export interface FilesystemReading {
  /** What is mounted: /dev/vda1, tmpfs, overlay, … */
  source: string;
  type?: string;
  mount: string;
  sizeBytes: number;
  usedBytes: number;
  availableBytes?: number;
}

const RUNTIME_MOUNTS = /^\/(var\/lib|run|var\/run)\/(docker|containerd|containers)\//;

/**
 * The filesystems worth reporting: no container root filesystems (overlay mounts of the
 * runtime), and a block device mounted twice (bind mounts) once, at its shortest mount path.
 */
export function localFilesystems(list: readonly FilesystemReading[]): FilesystemReading[] {
  const kept = new Map<string, FilesystemReading>();
  const sorted = [...list].sort((a, b) => a.mount.length - b.mount.length || a.mount.localeCompare(b.mount));
  for (const f of sorted) {
    if (RUNTIME_MOUNTS.test(f.mount) || (f.type === 'overlay' && f.mount !== '/')) continue;
    const key = f.source.startsWith('/dev/') ? f.source : `mount:${f.mount}`;
    if (!kept.has(key)) kept.set(key, f);
  }
  return [...kept.values()].sort((a, b) => a.mount.localeCompare(b.mount));
}

/** Storage on the device: the block-device filesystems, each device once. */
export function storageTotalBytes(list: readonly FilesystemReading[]): number | undefined {
  const disks = localFilesystems(list).filter((f) => f.source.startsWith('/dev/'));
  return disks.length ? disks.reduce((n, f) => n + f.sizeBytes, 0) : undefined;
}
