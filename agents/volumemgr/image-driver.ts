// Docker images, the side-effecting part: assemble a docker-archive from
// verified blobs (streamed, no temporary copy), load it, list and remove the
// images this zedbox tagged. Idempotent: an image already there is not loaded again.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import { digestHex } from '../../lib/content-store';
import { isDockerNoop } from '../../lib/docker';

export interface LoadRequest {
  imageRef: string;
  configDigest: string;
  configPath: string;
  layerPaths: string[];
}

/** Streams a docker-archive (manifest.json, config, layers) of verified files into `pack`. */
async function writeArchive(pack: tar.Pack, req: LoadRequest): Promise<void> {
  const configName = `${digestHex(req.configDigest)}.json`;
  const layers = req.layerPaths.map((_, i) => `layer-${i}/layer.tar`);
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [req.imageRef], Layers: layers }]);
  pack.entry({ name: 'manifest.json' }, manifest);
  const files: [string, string][] = [[configName, req.configPath], ...req.layerPaths.map((p, i): [string, string] => [layers[i] as string, p])];
  for (const [name, file] of files) {
    const size = (await fs.promises.stat(file)).size;
    const entry = pack.entry({ name, size });
    await pipeline(fs.createReadStream(file), entry);
  }
  pack.finalize();
}

/** Docker's load reports failures inside its progress stream, not as a rejection: look there. */
async function followLoad(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
  const events = await new Promise<Array<{ error?: string; errorDetail?: { message?: string } }>>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, res: unknown[]) => (err ? reject(err) : resolve(res as never)));
  });
  const bad = events.find((e) => e.error || e.errorDetail);
  if (bad) throw new Error(`docker load: ${bad.error ?? bad.errorDetail?.message}`);
}

/** The image id under a tag, or undefined when Docker has no such tag. */
export async function imageIdOf(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if (isDockerNoop(err)) return undefined;
    throw err;
  }
}

/** Loads the image unless Docker already has it under that tag; returns the checked image id. */
export async function loadImage(docker: Docker, req: LoadRequest): Promise<{ imageId: string; loaded: boolean }> {
  if ((await imageIdOf(docker, req.imageRef)) === req.configDigest) return { imageId: req.configDigest, loaded: false };
  const pack = tar.pack();
  // Written while Docker reads it; a failed read of a blob aborts the upload.
  const writing = writeArchive(pack, req).then(() => undefined, (err: Error) => {
    pack.destroy(err);
    return err;
  });
  let response: NodeJS.ReadableStream;
  try {
    response = await docker.loadImage(pack as unknown as NodeJS.ReadableStream, { quiet: true });
  } catch (err) {
    throw (await writing) ?? err;
  }
  const writeError = await writing;
  if (writeError) throw writeError;
  await followLoad(docker, response);
  const id = await imageIdOf(docker, req.imageRef);
  if (id !== req.configDigest) throw new Error(`docker load of ${req.imageRef} gave image ${id ?? 'none'}, expected ${req.configDigest}`);
  return { imageId: id, loaded: true };
}

/** Every repo:tag with the prefix, and its image id. */
export async function listImages(docker: Docker, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const img of await docker.listImages()) {
    for (const tag of img.RepoTags ?? []) if (tag.startsWith(prefix)) out.set(tag, img.Id);
  }
  return out;
}

/** Removes a tag (and the image when no other tag holds it). 'in-use' when a container still uses it. */
export async function removeImage(docker: Docker, ref: string): Promise<'removed' | 'in-use'> {
  try {
    await docker.getImage(ref).remove();
    return 'removed';
  } catch (err) {
    if (isDockerNoop(err)) return 'removed';
    if ((err as { statusCode?: number }).statusCode === 409) return 'in-use';
    throw err;
  }
}
