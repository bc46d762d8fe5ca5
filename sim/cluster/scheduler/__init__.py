"""kube-scheduler: queue, framework, plugins and the scheduling loop."""
