// The sample application linked into Prefork: one executable that is the master and, started again by
// the master with the worker flag, each worker. Takes every `prefork` flag: prefork-sample -c gateway.toml
return Prefork.PreforkHost.Run<Prefork.SampleApp.SampleApplication>(args);
