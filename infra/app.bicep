// Everything the bot runs on, in one resource group: a Flex Consumption Function App (Python), its storage
// account (hand-off queue, evidence container, deployment package), Azure SQL (Entra-only, serverless),
// Log Analytics + Application Insights + the alert rules of monitoring/, Key Vault for the secrets, and one
// user-assigned managed identity holding only the roles the code needs. Keys are never used: the storage
// account refuses shared keys and the SQL server refuses SQL logins.

param environmentName string
param location string
param tags object
param principalId string
param sqlAdminLogin string
param sqlAdminPrincipalType string
param alertEmail string
@secure()
param whatsappAppSecret string
@secure()
param whatsappVerifyToken string
@secure()
param whatsappAccessToken string
param whatsappPhoneNumberId string
param aiProvider string
@secure()
param openaiApiKey string
@secure()
param geminiApiKey string

@allowed(['3.11', '3.12'])
param pythonVersion string = '3.11'

@description('Serverless Azure SQL: the most vCores it may scale to (GP_S_Gen5_<n>)')
@allowed([1, 2, 4, 6, 8])
param sqlMaxVcores int = 2

@description('Database threads per app instance (the DB_POOL_SIZE app setting)')
param dbPoolSize int = 8

@description('Minutes without connections before the serverless database pauses (-1: never)')
param sqlAutoPauseDelay int = 60

// Timers on Azure (locally every 10-60 s). The queue rarely loses a hand-off; when it does, the sweep
// redrives within its period. Replies go out eagerly; the outbox sweep only retries and settles. An idle
// run of each costs one read (core/storage/idle.py); docs/operations.md §10 has the arithmetic.
param sweepSchedule string = '0 */5 * * * *'
param outboxSweepSchedule string = '15 * * * * *'
param metricsSampleSchedule string = '30 */5 * * * *'

var suffix = uniqueString(subscription().id, resourceGroup().id, environmentName)
var handoffQueue = 'conversaciones-pendientes' // core/handoff.py HANDOFF_QUEUE
var evidenceContainer = 'evidencias'
var packageContainer = 'app-package'
var databaseName = 'reportes'

// Azure SQL serverless Gen5 allows 75 concurrent workers per vCore. Each instance holds at most DB_POOL_SIZE
// sessions, and a fifth of the workers stays free for migrations, sweeps and people: the Function App may
// scale out to this many instances and never exhaust the database's workers (error 10928).
var dbMaxWorkers = sqlMaxVcores * 75
var maxInstanceCount = max(1, (dbMaxWorkers * 4 / 5) / dbPoolSize)

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host: timer locks, deployment package, evidence
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0a3d0' // hand-off queue: create, send, read, delete, poison
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault references in the app settings
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${environmentName}-${suffix}'
  location: location
  tags: tags
}

// -- storage ---------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('st${toLower(replace(environmentName, '-', ''))}${suffix}', 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageBlobs 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainer
}

resource evidenceBlobs 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: evidenceContainer
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource handoff 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: handoffQueue
}

resource handoffPoison 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${handoffQueue}-poison'
}

resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// -- secrets -----------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('kv-${environmentName}-${suffix}', 24)
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

var requiredSecrets = {
  'whatsapp-app-secret': whatsappAppSecret
  'whatsapp-verify-token': whatsappVerifyToken
  'whatsapp-access-token': whatsappAccessToken
}
// AI keys only when given: a reference to a secret that does not exist would reach the app as its own text.
var optionalSecrets = union(empty(openaiApiKey) ? {} : { 'openai-api-key': openaiApiKey },
                            empty(geminiApiKey) ? {} : { 'gemini-api-key': geminiApiKey })

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for secret in items(union(requiredSecrets, optionalSecrets)): {
  parent: vault
  name: secret.key
  properties: { value: secret.value }
}]

resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// -- database ------------------------------------------------------------------------------------------

resource sqlServer 'Microsoft.Sql/servers@2023-08-01-preview' = {
  name: 'sql-${environmentName}-${suffix}'
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true // no SQL logins, no passwords
      login: sqlAdminLogin
      sid: principalId
      principalType: sqlAdminPrincipalType
      tenantId: subscription().tenantId
    }
  }
}

// Flex Consumption without a virtual network reaches SQL from Azure's outbound addresses.
resource sqlAllowAzure 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = {
  parent: sqlServer
  name: 'AllowAllWindowsAzureIps'
  properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
}

resource database 'Microsoft.Sql/servers/databases@2023-08-01-preview' = {
  parent: sqlServer
  name: databaseName
  location: location
  tags: tags
  sku: { name: 'GP_S_Gen5', tier: 'GeneralPurpose', family: 'Gen5', capacity: sqlMaxVcores }
  properties: {
    autoPauseDelay: sqlAutoPauseDelay
    minCapacity: json('0.5')
    requestedBackupStorageRedundancy: 'Local'
  }
}

// -- monitoring ----------------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${environmentName}-${suffix}'
  location: location
  tags: tags
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${environmentName}-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${environmentName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('bot${environmentName}', 12)
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [{ name: 'guardia', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

module alerts '../monitoring/alerts.bicep' = {
  name: 'alerts'
  params: {
    appInsightsId: insights.id
    actionGroupId: actionGroup.id
    location: location
    namePrefix: 'reportes-bot-${environmentName}'
  }
}

// -- the Function App ------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${environmentName}-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

var sqlConnectionString = 'Driver={ODBC Driver 18 for SQL Server};Server=tcp:${sqlServer.properties.fullyQualifiedDomainName},1433;Database=${databaseName};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;Authentication=ActiveDirectoryMsi;UID=${identity.properties.clientId}'

func vaultRef(vaultName string, secret string) string => '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${secret})'

// Every setting the code reads on Azure (tests/test_infra.py checks this list against the code).
// Flex Consumption sets the runtime itself: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not allowed.
var appSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
  SQL_CONNECTION_STRING: sqlConnectionString
  DB_POOL_SIZE: string(dbPoolSize)
  WHATSAPP_APP_SECRET: vaultRef(vault.name, 'whatsapp-app-secret')
  WHATSAPP_VERIFY_TOKEN: vaultRef(vault.name, 'whatsapp-verify-token')
  WHATSAPP_ACCESS_TOKEN: vaultRef(vault.name, 'whatsapp-access-token')
  WHATSAPP_PHONE_NUMBER_ID: whatsappPhoneNumberId
  AI_PROVIDER: aiProvider
  CONVERSATION_SWEEP_SCHEDULE: sweepSchedule
  AI_RECOVERY_SCHEDULE: sweepSchedule
  OUTBOX_SWEEP_SCHEDULE: outboxSweepSchedule
  METRICS_SAMPLE_SCHEDULE: metricsSampleSchedule
  EVIDENCE_SWEEP_SCHEDULE: sweepSchedule
}
var aiKeySettings = union(empty(openaiApiKey) ? {} : { OPENAI_API_KEY: vaultRef(vault.name, 'openai-api-key') },
                          empty(geminiApiKey) ? {} : { GEMINI_API_KEY: vaultRef(vault.name, 'gemini-api-key') })

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${environmentName}-${suffix}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    siteConfig: { minTlsVersion: '1.2', ftpsState: 'Disabled' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${packageContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maxInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: pythonVersion }
    }
  }
  dependsOn: [storageBlobOwner, storageQueueContributor, vaultSecretsUser, secrets]
}

resource functionAppSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, aiKeySettings)
}

output functionAppName string = functionApp.name
output functionAppHostname string = functionApp.properties.defaultHostName
output sqlServerName string = sqlServer.name
output sqlServerFqdn string = sqlServer.properties.fullyQualifiedDomainName
output sqlDatabaseName string = databaseName
output identityName string = identity.name
output maxInstanceCount int = maxInstanceCount
output storageAccountName string = storage.name
