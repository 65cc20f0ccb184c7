// `azd up` entry point: one resource group holding everything the bot runs on (infra/app.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(48)
@description('azd environment name (e.g. staging, prod); names and tags every resource')
param environmentName string

@description('Azure region; Flex Consumption must be offered there')
param location string

@description('Object id of whoever runs azd: the SQL server Entra admin, who runs the migrations')
param principalId string

@description('Display name of that admin (a UPN or group name), shown in the SQL server')
param sqlAdminLogin string = 'azd-deployer'

@allowed(['User', 'Group', 'Application'])
param sqlAdminPrincipalType string = 'User'

@description('Who the alerts e-mail (empty: the action group has no receiver yet)')
param alertEmail string = ''

@secure()
param whatsappAppSecret string
@secure()
param whatsappVerifyToken string
@secure()
param whatsappAccessToken string
param whatsappPhoneNumberId string
param aiProvider string = 'offline'
@secure()
param openaiApiKey string = ''
@secure()
param geminiApiKey string = ''

var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module app 'app.bicep' = {
  name: 'app'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    principalId: principalId
    sqlAdminLogin: sqlAdminLogin
    sqlAdminPrincipalType: sqlAdminPrincipalType
    alertEmail: alertEmail
    whatsappAppSecret: whatsappAppSecret
    whatsappVerifyToken: whatsappVerifyToken
    whatsappAccessToken: whatsappAccessToken
    whatsappPhoneNumberId: whatsappPhoneNumberId
    aiProvider: aiProvider
    openaiApiKey: openaiApiKey
    geminiApiKey: geminiApiKey
  }
}

// azd stores these in the environment; the post-provision hook and `azd deploy` read them.
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output FUNCTION_APP_HOSTNAME string = app.outputs.functionAppHostname
output SQL_SERVER_NAME string = app.outputs.sqlServerName
output SQL_SERVER_FQDN string = app.outputs.sqlServerFqdn
output SQL_DATABASE string = app.outputs.sqlDatabaseName
output APP_IDENTITY_NAME string = app.outputs.identityName
output MAX_INSTANCE_COUNT int = app.outputs.maxInstanceCount
output AZURE_STORAGE_ACCOUNT string = app.outputs.storageAccountName
