/**
 * parseCgroupName() on real paths, as each runtime and kubelet driver
 * writes them (taken from their own sources, tests and logs: kubelet's
 * cgroup_manager tests, cAdvisor's containerd and CRI-O factory tests, a
 * kubelet log of a kind node, podman inspect output, containerd 1.4 with a
 * mismatched cgroup driver).
 */
import { describe, expect, it } from 'vitest';

import { parseCgroupName, type CgroupName } from '../lib/index.js';

const none: Omit<CgroupName, 'path'> = {
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

function expectName(path: string, expected: Partial<CgroupName>): void {
  expect(parseCgroupName(path)).toEqual({ ...none, path, ...expected });
}

describe('parseCgroupName: systemd units and slices', () => {
  it('a system service, a user session and a user manager\'s app', () => {
    expectName('/system.slice/api.service', { unit: 'api.service', unitPath: '/system.slice/api.service', slice: 'system.slice' });
    expectName('/user.slice/user-1000.slice/session-2.scope', {
      unit: 'session-2.scope',
      unitPath: '/user.slice/user-1000.slice/session-2.scope',
      slice: 'user-1000.slice',
    });
    const app = '/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Terminal-3702.scope';
    expectName(app, { unit: 'app-gnome-org.gnome.Terminal-3702.scope', unitPath: app, slice: 'app.slice' });
  });

  it('a process in a sub-cgroup of its service belongs to the service', () => {
    expectName('/system.slice/api.service/worker', { unit: 'api.service', unitPath: '/system.slice/api.service', slice: 'system.slice' });
  });

  it('escaped unit names stay as systemd spells them; a slice alone has no unit', () => {
    expectName('/system.slice/system-systemd\\x2dcoredump.slice', { slice: 'system-systemd\\x2dcoredump.slice' });
  });

  it('the root and unknown shapes keep only the raw path', () => {
    expectName('/', {});
    expectName('/process_api/85d5faa2a85f427675497004a42954ed', {});
    // containerd's rootfs mount units are not containers (cAdvisor's test).
    const mount = '/system.slice/run-containerd-io.containerd.runtime.v1.linux-k8s.io-14ae50f1d3ada102aec3ab00168fdafb2dc0986d79ca9e8d5b75581fa89e9fea-rootfs.mount';
    expectName(mount, { slice: 'system.slice' });
  });
});

describe('parseCgroupName: Kubernetes, systemd driver', () => {
  it('containerd, besteffort', () => {
    const pod = '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6553a60b_2b97_442a_b6da_a5704d81dd98.slice';
    const path = `${pod}/cri-containerd-413715dc061efe71c16ef989f2f2ff5cf999a7dc905bb7078eda82cbb38210ec.scope`;
    expectName(path, {
      unit: 'cri-containerd-413715dc061efe71c16ef989f2f2ff5cf999a7dc905bb7078eda82cbb38210ec.scope',
      unitPath: path,
      slice: 'kubepods-besteffort-pod6553a60b_2b97_442a_b6da_a5704d81dd98.slice',
      podUid: '6553a60b-2b97-442a-b6da-a5704d81dd98',
      podPath: pod,
      qosClass: 'besteffort',
      containerId: '413715dc061efe71c16ef989f2f2ff5cf999a7dc905bb7078eda82cbb38210ec',
      containerPath: path,
      runtime: 'containerd',
    });
  });

  it('containerd on a kind node (kubelet.slice prefix), from a kubelet log: podUID a45947e4-...', () => {
    const name = parseCgroupName(
      '/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-poda45947e4_314c_4694_8f05_5e1425a02de4.slice/cri-containerd-abb37780fc913b3720641a4039186adb06f5d1de0229de0e8707f12e2fde5a21.scope',
    );
    expect(name).toMatchObject({
      podUid: 'a45947e4-314c-4694-8f05-5e1425a02de4',
      qosClass: 'burstable',
      containerId: 'abb37780fc913b3720641a4039186adb06f5d1de0229de0e8707f12e2fde5a21',
      runtime: 'containerd',
    });
  });

  it('CRI-O, burstable; its conmon scope is a unit of the pod, not a container', () => {
    const pod = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod69349abe_d645_11ea_9c4c_08002709c05c.slice';
    expect(parseCgroupName(`${pod}/crio-80d85a3a585f1575028ebe468d83093c301eda20d37d1671ff2a0be50fc0e460.scope`)).toMatchObject({
      podUid: '69349abe-d645-11ea-9c4c-08002709c05c',
      qosClass: 'burstable',
      containerId: '80d85a3a585f1575028ebe468d83093c301eda20d37d1671ff2a0be50fc0e460',
      runtime: 'cri-o',
    });
    const conmon = parseCgroupName(`${pod}/crio-conmon-80d85a3a585f1575028ebe468d83093c301eda20d37d1671ff2a0be50fc0e460.scope`);
    expect(conmon).toMatchObject({ podUid: '69349abe-d645-11ea-9c4c-08002709c05c', containerId: undefined, unit: 'crio-conmon-80d85a3a585f1575028ebe468d83093c301eda20d37d1671ff2a0be50fc0e460.scope' });
  });

  it('a guaranteed pod sits right under kubepods.slice', () => {
    expect(
      parseCgroupName('/kubepods.slice/kubepods-pod2105e389_7471_476e_a50f_6074cef29bbd.slice/crio-d6d725b909f37c3e232aadfbafa950a58bfe7baa579ba8c47a12be88bb921607.scope'),
    ).toMatchObject({ podUid: '2105e389-7471-476e-a50f-6074cef29bbd', qosClass: 'guaranteed', runtime: 'cri-o' });
  });

  it('static pods are named by a 32-hex config hash, kept as it is', () => {
    expect(
      parseCgroupName('/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pode4e6004e827fdf45941cf777618f60ce.slice/crio-192f5a90b165665d969bb0137b8573f2214c8f75b728ecc58dbbc7fccd64af28.scope'),
    ).toMatchObject({ podUid: 'e4e6004e827fdf45941cf777618f60ce', containerId: '192f5a90b165665d969bb0137b8573f2214c8f75b728ecc58dbbc7fccd64af28' });
  });

  it('Docker through kubelet (dockershim, cri-dockerd)', () => {
    expect(
      parseCgroupName('/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod487a0dc6_dcca_eefb_cfed_ba7a7ce1ca18.slice/docker-67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f.scope'),
    ).toMatchObject({ podUid: '487a0dc6-dcca-eefb-cfed-ba7a7ce1ca18', runtime: 'docker', containerId: '67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f' });
  });

  it('rootless kubelet under a user manager', () => {
    expect(
      parseCgroupName('/user.slice/user-1001.slice/user@1001.service/user.slice/cri-containerd-6938564e754ad86269a536ed19172af0eff5f7ff0a41eefc5b433a76f1f38f16.scope'),
    ).toMatchObject({ podUid: undefined, runtime: 'containerd', containerId: '6938564e754ad86269a536ed19172af0eff5f7ff0a41eefc5b433a76f1f38f16', slice: 'user.slice' });
  });

  it('seen from another cgroup namespace, the path climbs with ..; the pod slice alone still says which pod', () => {
    expect(
      parseCgroupName('/../../../kubepods-burstable.slice/kubepods-burstable-pod48d25824_cbe2_4fdc_9928_5bb49e05473d.slice/cri-containerd-c40dff48f1d53c3f07a50aa12bb9ae0e58c0927dc6b1d77e3f166784722642ad.scope'),
    ).toMatchObject({ podUid: '48d25824-cbe2-4fdc-9928-5bb49e05473d', qosClass: 'burstable', runtime: 'containerd' });
  });

  it('containerd 1.4 with a mismatched driver writes the systemd slice:prefix:id as a path', () => {
    const path = '/system.slice/containerd.service/kubepods-besteffort-pod2105e389_7471_476e_a50f_6074cef29bbd.slice:cri-containerd:d3d8ccf5cca91931c6285c1d7472c413dd5a7700fddc0aa9f89a9ac7008b003e';
    expect(parseCgroupName(path)).toMatchObject({
      podUid: '2105e389-7471-476e-a50f-6074cef29bbd',
      qosClass: 'besteffort',
      containerId: 'd3d8ccf5cca91931c6285c1d7472c413dd5a7700fddc0aa9f89a9ac7008b003e',
      containerPath: path,
      runtime: 'containerd',
      podPath: path,
    });
  });
});

describe('parseCgroupName: Kubernetes, cgroupfs driver', () => {
  it('containerd (cAdvisor): the bare id does not say which runtime', () => {
    const path = '/kubepods/besteffort/podd76e26fba3bf2bfd215eb29011d55250/40af7cdcbe507acad47a5a62025743ad3ddc6ab93b77b21363aa1c1d641047c9';
    expectName(path, {
      podUid: 'd76e26fba3bf2bfd215eb29011d55250',
      podPath: '/kubepods/besteffort/podd76e26fba3bf2bfd215eb29011d55250',
      qosClass: 'besteffort',
      containerId: '40af7cdcbe507acad47a5a62025743ad3ddc6ab93b77b21363aa1c1d641047c9',
      containerPath: path,
    });
    expect(parseCgroupName('/kubepods/besteffort/poda36d0c1d-0b26-4451-8d80-9c195e004afa/5dd96d5394ca930a854a390ea46f7515a8bc930123eb3251ba20f2708a38fc61')).toMatchObject({
      podUid: 'a36d0c1d-0b26-4451-8d80-9c195e004afa',
    });
  });

  it('CRI-O (cAdvisor): crio-<id>, a guaranteed pod under /kubepods; short ids are not containers', () => {
    expect(parseCgroupName('/kubepods/pod068e8fa0-9213-11e7-a01f-507b9d4141fa/crio-81e5c2990803c383229c9680ce964738d5e566d97f5bd436ac34808d2ec75d5f')).toMatchObject({
      podUid: '068e8fa0-9213-11e7-a01f-507b9d4141fa',
      qosClass: 'guaranteed',
      runtime: 'cri-o',
      containerId: '81e5c2990803c383229c9680ce964738d5e566d97f5bd436ac34808d2ec75d5f',
    });
    expect(parseCgroupName('/kubepods/pod068e8fa0-9213-11e7-a01f-507b9d4141fa/crio-990803c383229c9680ce964738d5e566d97f5bd436ac34808d2ec75')).toMatchObject({
      containerId: undefined,
    });
  });
});

describe('parseCgroupName: Docker and Podman on their own', () => {
  it('Docker: systemd scope and cgroupfs', () => {
    expectName('/system.slice/docker-67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f.scope', {
      unit: 'docker-67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f.scope',
      unitPath: '/system.slice/docker-67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f.scope',
      slice: 'system.slice',
      containerId: '67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f',
      containerPath: '/system.slice/docker-67f98c9e6188f9c1818672a15dbe46237b6ee7e77f834d40d41c5fb3c2f84a2f.scope',
      runtime: 'docker',
    });
    expect(parseCgroupName('/docker/cb8c113e5f3cf8332f5231f8154adc429ea910f7c29995372de4f571c55d3159')).toMatchObject({
      runtime: 'docker',
      containerId: 'cb8c113e5f3cf8332f5231f8154adc429ea910f7c29995372de4f571c55d3159',
      podUid: undefined,
    });
  });

  it('Podman: machine.slice, a rootless user slice, cgroupfs, and its conmon', () => {
    expect(parseCgroupName('/machine.slice/libpod-55ea3863351726184e26ca7418f577d04c96dac0009e1f088f6c0c7a1dc2ed7c.scope')).toMatchObject({
      runtime: 'podman',
      containerId: '55ea3863351726184e26ca7418f577d04c96dac0009e1f088f6c0c7a1dc2ed7c',
      slice: 'machine.slice',
    });
    expect(
      parseCgroupName('/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-ba2f357a1a56ae4c263d4f5e8d46e12ceef89a08d7333ca29278e4f119e1b65c.scope/container'),
    ).toMatchObject({ runtime: 'podman', containerId: 'ba2f357a1a56ae4c263d4f5e8d46e12ceef89a08d7333ca29278e4f119e1b65c' });
    expect(parseCgroupName('/libpod_parent/libpod-ba2f357a1a56ae4c263d4f5e8d46e12ceef89a08d7333ca29278e4f119e1b65c')).toMatchObject({ runtime: 'podman' });
    expect(parseCgroupName('/machine.slice/libpod-conmon-55ea3863351726184e26ca7418f577d04c96dac0009e1f088f6c0c7a1dc2ed7c.scope')).toMatchObject({
      containerId: undefined,
      unit: 'libpod-conmon-55ea3863351726184e26ca7418f577d04c96dac0009e1f088f6c0c7a1dc2ed7c.scope',
    });
  });
});
