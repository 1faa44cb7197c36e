"""esiprov: resource configs in etcd become Heat stacks and SNMP monitoring, and their state goes back to etcd.

How a resource version flows, and the module that does each step::

    /config/v2.0/<plural>/<id>             written by the API server
          |
          |  watch       watcher: one leader lists, then watches /config; every event means
          v              "this key changed" and goes to reconcile (level-triggered)
    reconcile -- plan    planner: config version vs applied /state -> create | modify |
          |              logical_delete -> jobs, templates chosen and params resolved
          |              (templates, mappings)
          v
       dispatch          one etcd transaction: /jobs/all/<job id> + the workflow record (the
          |              resource's lock), then one Celery chain (task id = job id)
          v
    chain (tasks)        heat_worker (heat) -> monitoring_worker (snmp, target_kinds) -> finalize
          |              each step loads its job from etcd, waits without holding a worker,
          v              retries transient errors, and fails into /state when it cannot succeed
       publish           /state and /monitoring composed from job_state; the workflow released;
                         a newer version waiting is re-driven (reconcile again)

    beside the flow:
      holds     each worker records the workflows it holds on its etcd lease
      recovery  the leading watcher resends what a dead worker held, or what a broker lost
      poller    celery beat's SNMP polls keep /monitoring true
      requeue, jobstatus, cli   what operators run and read

The contract, each in one module: what every etcd key holds (documents, with
the key layout in keys), every Celery task with its queue (steps), every kind of
monitoring target (target_kinds), and one root of errors, transient or
permanent (errors).

The layers (lower ones never import higher ones, the library never imports
``tasks`` or ``esiprov.devenv``) are a contract that ``lint-imports`` checks, in
setup.cfg, bottom to top: errors -> settings, keys, mappings, ifindex, output,
steps, damping, task_events -> store, documents -> templates, publish, leader,
heat, snmp, broker, fleet, tsdb -> planner, target_kinds -> dispatch, poller,
follow -> reconcile, requeue, jobstatus, recovery, holds, health, logs ->
watcher, app, resources, completion -> metrics -> cli.
"""
