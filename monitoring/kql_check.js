// Parse and bind KQL queries with Kusto.Language (Microsoft's own parser, compiled to JavaScript)
// against the Application Insights tables this app writes to. Input on stdin: [{"name", "query"}];
// output on stdout: [{"name", "errors": ["message @offset", ...]}]. Used by tests/test_monitoring.py.
global.Bridge = require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");

const K = Kusto.Language;
const S = K.Symbols;
const common = "timestamp:datetime, itemType:string, itemId:string, itemCount:int, customDimensions:dynamic, " +
  "customMeasurements:dynamic, operation_Name:string, operation_Id:string, operation_ParentId:string, " +
  "cloud_RoleName:string, cloud_RoleInstance:string, appName:string, appId:string, iKey:string, sdkVersion:string";
const schemas = {
  traces: "message:string, severityLevel:int",
  requests: "id:string, name:string, url:string, success:bool, resultCode:string, duration:real, " +
    "performanceBucket:string, source:string",
  exceptions: "problemId:string, handledAt:string, type:string, message:string, assembly:string, method:string, " +
    "outerType:string, outerMessage:string, outerAssembly:string, outerMethod:string, innermostType:string, " +
    "innermostMessage:string, severityLevel:int, details:dynamic",
  dependencies: "id:string, target:string, type:string, name:string, data:string, success:bool, " +
    "resultCode:string, duration:real, performanceBucket:string",
  customMetrics: "name:string, value:real, valueCount:int, valueSum:real, valueMin:real, valueMax:real, " +
    "valueStdDev:real",
};
const tables = Object.entries(schemas).map(([name, cols]) => S.TableSymbol.From(`(${common}, ${cols})`).WithName(name));
const globals = K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor("appinsights", tables));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ name, query }) => {
    const diagnostics = K.KustoCode.ParseAndAnalyze(query, globals).GetDiagnostics();
    const errors = [];
    for (let i = 0; i < diagnostics.Count; i++) {
      const d = diagnostics.getItem(i);
      if (d.Severity === "Error") errors.push(`${d.Message} @${d.Start}`);
    }
    return { name, errors };
  });
  process.stdout.write(JSON.stringify(out));
});
