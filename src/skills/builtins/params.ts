import { z } from "zod";

// Kubernetes names as they reach a builtin from alert labels: validated before they are used to
// look anything up, so a label can't smuggle in a path or an option.

export const Namespace = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a Kubernetes namespace (DNS label)");
export const ObjectName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "a Kubernetes object name");
export const ContainerName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a container name (DNS label)");

/** `deployment` (the workload's name, whatever its kind) or `pod` (one of its pods), not both. */
export const workloadParams = {
  namespace: Namespace,
  deployment: ObjectName.optional(),
  pod: ObjectName.optional(),
};

export const oneWorkload = (p: { deployment?: string | undefined; pod?: string | undefined }) =>
  (p.deployment === undefined) !== (p.pod === undefined);
export const oneWorkloadMessage = { message: "give exactly one of deployment or pod" };
