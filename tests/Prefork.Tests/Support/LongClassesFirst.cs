using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("Prefork.Tests.Support.LongClassesFirst", "Prefork.Tests")]

namespace Prefork.Tests.Support;

/// <summary>
/// A test class whose tests together run long (a quarter of a minute or more): xunit runs a class's tests
/// one after another, so such a class starts first rather than end the run alone on one core.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class LongClassAttribute : Attribute;

/// <summary>Starts the collections of <see cref="LongClassAttribute"/> classes first, then the others, each in xunit's order.</summary>
public sealed class LongClassesFirst : ITestCollectionOrderer
{
    private static readonly string[] LongClasses = typeof(LongClassesFirst).Assembly.GetTypes()
        .Where(t => t.IsDefined(typeof(LongClassAttribute), inherit: false)).Select(t => t.FullName!).ToArray();

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> collections) =>
        collections.OrderBy(c => IsLong(c) ? 0 : 1);

    // A class without [Collection] is a collection of its own, named "Test collection for NAMESPACE.CLASS".
    private static bool IsLong(ITestCollection collection) =>
        LongClasses.Any(name => collection.DisplayName.EndsWith(" for " + name, StringComparison.Ordinal));
}
