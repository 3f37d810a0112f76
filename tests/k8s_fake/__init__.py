"""A fake Kubernetes core/v1 API server and kubelet for tests (speaks the real HTTP protocol).

    with FakeKube(namespace="jhub") as kube:       # 127.0.0.1:<random port>, own thread
        kube.kubeconfig                              # a kubeconfig pointing at it
        kube.fault(r"/pods$", 403, "POST")           # inject: status, delay= (late=), drop=, times=
        kube.api_down(); kube.api_up()               # connection refused, then back
        kube.create("resourcequotas", {...})         # objects, as the API server stores them
        kube.list("pods", "jhub"); kube.get("persistentvolumeclaims", "claim-ada")

Resources: namespaces, nodes, pods, persistentvolumeclaims, services, secrets, configmaps,
events, resourcequotas, serviceaccounts. List and chunked watch (``watch=true``) honour
``resourceVersion`` (410 Expired once compacted), ``timeoutSeconds``, label and field
selectors; errors are Status bodies; deleting an owner deletes its dependents, and a
dependent whose owners are all absent from its namespace goes (an owner in another
namespace counts as absent, as for the real garbage collector); claims carry the
pvc-protection finalizer. The kubelet schedules against one node's allocatable CPU and
memory, pulls from a fake registry (``images``), runs each container as a real process
group on its own 127.0.x.y address with the pod's environment, reports status and events,
restarts by ``restartPolicy`` and honours grace periods.
"""

from .api import Fault
from .server import FakeKube, default_images, free_port
from .store import ApiError

__all__ = ["ApiError", "FakeKube", "Fault", "default_images", "free_port"]
