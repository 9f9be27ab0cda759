// The `prefork` executable. All the work lives in Prefork.Server; this is only the entry point.
return Prefork.CommandLine.Run(args);
