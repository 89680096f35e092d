// Rendered manifests checked against the Kubernetes OpenAPI schemas that kubernetes-models compiles (and the
// prometheus-operator CRDs). Every kind the chart renders must have a model here: an unknown kind fails.
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import {
  MutatingWebhookConfiguration,
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { Manifest } from './helm.js';

// Each model takes its own kind; which one is known only at run time, from the manifest's apiVersion and kind.
type Model = new (data: never) => { validate(): void };

/** Cluster-wide policy kinds no offline schema package covers: the chart tests check their fields by value. */
export const UNVALIDATED_KINDS = new Set([
  'policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy',
  'cilium.io/v2/CiliumClusterwideNetworkPolicy',
  'projectcalico.org/v3/GlobalNetworkPolicy',
]);

const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  // Only the injector's own serving certificate (injector.tls.source: helm); operators' secrets are referenced.
  'v1/Secret': Secret,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'cert-manager.io/v1/Certificate': Certificate,
  'cert-manager.io/v1/Issuer': Issuer,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/** null when the manifest is valid, else why not. */
export function validateManifest(m: Manifest): string | null {
  const key = `${m.apiVersion}/${m.kind}`;
  const model = MODELS[key];
  if (!model) return `no schema for ${key}`;
  try {
    new model(m as never).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
