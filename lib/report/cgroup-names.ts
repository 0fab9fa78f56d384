/**
 * What a cgroup path says about the processes in it: the systemd unit and
 * slice, the Kubernetes pod (uid and QoS class) and the container (id and
 * runtime). A pure function of the path, so it also reads paths seen from
 * another cgroup namespace (`/../../kubepods-burstable-pod<uid>.slice/...`).
 *
 * Shapes known (innermost match wins for each field; anything else keeps
 * only its raw path):
 * - systemd: `/system.slice/api.service`, `/user.slice/user-1000.slice/session-2.scope`,
 *   `/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope`;
 * - kubelet, systemd driver: `kubepods[-<qos>].slice/kubepods[-<qos>]-pod<uid with _>.slice`,
 *   with `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` inside;
 * - kubelet, cgroupfs driver: `/kubepods[/<qos>]/pod<uid>/<id>` (CRI-O: `crio-<id>`);
 * - Docker: `/system.slice/docker-<id>.scope`, `/docker/<id>`;
 * - Podman: `libpod-<id>.scope` (machine.slice or a user's slice), `/libpod_parent/libpod-<id>`.
 * - a systemd `slice:prefix:id` name written as a cgroupfs path (`kubepods-pod<uid>.slice:cri-containerd:<id>`).
 * Monitor processes (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) are units, not containers.
 */
import { invalidType } from '../validate.js';

export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'podman';
export type PodQosClass = 'guaranteed' | 'burstable' | 'besteffort';

export interface CgroupName {
  /** The path as the kernel printed it. */
  path: string;
  /** The innermost systemd unit (`api.service`, `cri-containerd-<id>.scope`, `session-2.scope`). */
  unit: string | undefined;
  /** The path down to the unit: the unit's own cgroup. */
  unitPath: string | undefined;
  /** The innermost slice (`system.slice`, `user-1000.slice`, `kubepods-burstable-pod<uid>.slice`). */
  slice: string | undefined;
  /** The pod's uid in its API form (dashed), as kube-state-metrics' `kube_pod_info{uid}`. */
  podUid: string | undefined;
  /** The path down to the pod's cgroup. */
  podPath: string | undefined;
  qosClass: PodQosClass | undefined;
  /** The container id (64 hex digits), as in a pod's `status.containerStatuses[].containerID` after `<runtime>://`. */
  containerId: string | undefined;
  /** The path down to the container's cgroup. */
  containerPath: string | undefined;
  /** The runtime where the name says it (the cgroupfs driver's bare ids do not). */
  runtime: ContainerRuntime | undefined;
}

const UUID_SYSTEMD = '[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** Static pods are named by a 32-hex config hash instead of a uid. */
const HASH = '[0-9a-f]{32}';
const ID = '[0-9a-f]{64}';

const POD_SLICE = new RegExp(`^(?:(.*)-)?pod(${UUID_SYSTEMD}|${HASH})\\.slice$`);
const POD_DIR = new RegExp(`^pod(${UUID}|${HASH})$`);
const SCOPE = new RegExp(`^(cri-containerd|crio|docker|libpod)-(${ID})\\.scope$`);
const CGROUPFS_PREFIXED = new RegExp(`^(crio|libpod)-(${ID})$`);
const BARE_ID = new RegExp(`^${ID}$`);
const UNIT = /\.(service|scope)$/;
/** A systemd driver's `slice:prefix:id` cgroupsPath used as a path, as runtimes misconfigured for cgroupfs write it. */
const SLICE_PREFIX_ID = new RegExp(`^(.+\\.slice):(cri-containerd|crio|docker|libpod):(${ID})$`);

const SCOPE_RUNTIME: Record<string, ContainerRuntime> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
};

/** The QoS class from the pod slice's prefix (`kubepods-burstable`) or the cgroupfs parent (`burstable`, `kubepods`). */
function qosOf(text: string | undefined): PodQosClass | undefined {
  if (text === undefined) return undefined;
  if (/(^|-)burstable$/i.test(text)) return 'burstable';
  if (/(^|-)besteffort$/i.test(text)) return 'besteffort';
  if (/(^|-)kubepods$/.test(text)) return 'guaranteed';
  return undefined;
}

/** The runtime of a bare 64-hex id under the cgroupfs driver: only Docker's own tree says. */
function bareRuntime(parent: string | undefined): ContainerRuntime | undefined {
  if (parent === 'docker') return 'docker';
  if (parent === 'libpod_parent') return 'podman';
  return undefined;
}

export function parseCgroupName(path: string): CgroupName {
  if (typeof path !== 'string') throw invalidType('path', 'of type string', path);
  const name: CgroupName = {
    path,
    unit: undefined,
    unitPath: undefined,
    slice: undefined,
    podUid: undefined,
    podPath: undefined,
    qosClass: undefined,
    containerId: undefined,
    containerPath: undefined,
    runtime: undefined,
  };
  // `pod.slice:cri-containerd:<id>` reads as the slice and the scope it stands
  // for; both keep the raw path down to that segment.
  const raw = path.split('/');
  const segments: Array<{ segment: string; upTo: string; parent: string | undefined }> = [];
  raw.forEach((segment, i) => {
    const upTo = raw.slice(0, i + 1).join('/');
    const parent = segments.at(-1)?.segment;
    const match = SLICE_PREFIX_ID.exec(segment);
    if (match === null) segments.push({ segment, upTo, parent });
    else segments.push({ segment: match[1]!, upTo, parent }, { segment: `${match[2]!}-${match[3]!}.scope`, upTo, parent: match[1]! });
  });
  for (const { segment, upTo, parent } of segments) {
    if (segment === '' || segment === '..' || segment === '.') continue;

    const podSlice = POD_SLICE.exec(segment);
    const podDir = podSlice === null ? POD_DIR.exec(segment) : null;
    if (podSlice !== null) {
      name.podUid = podSlice[2]!.replace(/_/g, '-');
      name.qosClass = qosOf(podSlice[1]);
      name.podPath = upTo;
    } else if (podDir !== null) {
      name.podUid = podDir[1]!;
      name.qosClass = qosOf(parent);
      name.podPath = upTo;
    }
    if (segment.endsWith('.slice')) name.slice = segment;

    const scope = SCOPE.exec(segment);
    const prefixed = scope === null ? CGROUPFS_PREFIXED.exec(segment) : null;
    if (scope !== null || prefixed !== null) {
      const match = (scope ?? prefixed)!;
      name.containerId = match[2]!;
      name.runtime = SCOPE_RUNTIME[match[1]!];
      name.containerPath = upTo;
    } else if (BARE_ID.test(segment)) {
      name.containerId = segment;
      name.runtime = bareRuntime(parent);
      name.containerPath = upTo;
    }
    if (UNIT.test(segment)) {
      name.unit = segment;
      name.unitPath = upTo;
    }
  }
  return name;
}
