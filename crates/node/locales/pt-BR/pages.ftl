# As páginas dos clientes em português do Brasil. Todo id daqui existe em todas as línguas (um
# teste de unidade confere); docs/i18n.md explica como acrescentar um. O dinheiro vem formatado
# pelo código (R$ 1.234,56); contagens vêm como números, para valerem as regras de plural.

## Em volta de toda página

lang-name-pt-BR = Português
lang-name-en = English
lang-switch = Idioma
shell-skip = Pular para o conteúdo
shell-signed-in-as = Conectado como
shell-nav = Principal
shell-times = Horários de Brasília.
nav-dashboard = Início
nav-pix = Pix
nav-packet = Pacote
nav-deposit = Depositar
nav-withdraw = Sacar
nav-statement = Extrato
nav-receive = Receber
nav-consortium = Consórcio
nav-sign-out = Sair
nav-sign-in = Entrar
nav-sign-up = Abrir uma conta

## Títulos das páginas

title-sign-in = Entrar
title-sign-up = Abrir uma conta
title-dashboard = Início
title-statement = Extrato
title-deposit = Depósito
title-withdraw = Saque
title-pix = Pix
title-pix-confirm = Confirme o Pix
title-transfer = Transferência
title-packet = Pacote
title-receive = Receber
title-consortium = Consórcio
title-trouble = Algo deu errado
title-no-transfer = Transferência não encontrada
title-sign-out-failed = Não foi possível sair

## Avisos depois de um redirecionamento

notice-signup = Sua conta está aberta. Boas-vindas!
notice-signup-nokey = Sua conta está aberta, mas a chave Pix do seu CPF/CNPJ não pôde ser cadastrada; veja em Receber.
notice-deposit = Depósito feito.
notice-withdrawal = Saque feito.
notice-key = Chave cadastrada.
notice-logout = Você saiu da sua conta.

## Peças comuns

form-nothing-done = Nada foi feito.
message-back = Voltar ao início
try-again = Tente de novo.
amount-label = Valor (R$)
amount-example = Por exemplo 1234,56 ou 1234.56.
available-now = Disponível agora:
status-completed = concluída
status-pending = em andamento
status-failed = falhou
kind-individual = pessoa física
kind-company = pessoa jurídica
kind-joint = conjunta
col-when = Quando
col-what = O quê
col-amount = Valor
col-status = Situação
col-bank = Banco
col-account = Conta
col-kind = Tipo
col-available = Disponível
col-blocked = Bloqueado
col-from = De
col-to = Para
col-state = Situação
col-source = Origem
col-total = Total
col-id = Id
col-name = Nome
col-address = Endereço
col-clock = Relógio

## Entrar e abrir conta

login-heading = Entre no { $bank }
login-email = E-mail
login-password = Senha
login-submit = Entrar
login-no-account = Ainda não tem conta aqui?
login-open = Abra uma conta
signup-heading = Abra uma conta no { $bank }
signup-kind = Tipo de conta
signup-kind-individual = Pessoa física (CPF)
signup-kind-company = Pessoa jurídica (CNPJ)
signup-kind-joint = Conjunta (duas pessoas, cada uma com CPF)
signup-name = Nome (da pessoa ou da empresa)
signup-document = CPF ou CNPJ
signup-document-hint = Com ou sem pontuação, por exemplo 529.982.247-25.
signup-second = Segundo titular (só para contas conjuntas)
signup-name-2 = Nome
signup-document-2 = CPF
signup-email = E-mail
signup-phone = Telefone
signup-phone-hint = Número brasileiro, por exemplo +55 75 99999-1234.
signup-password = Senha
signup-password-hint = Pelo menos { $min ->
    [one] um caractere
   *[other] { $min } caracteres
}.
signup-submit = Abrir a conta

## Início

dashboard-hello = Olá, { $name }
dashboard-account = Conta { $number }
dashboard-available = Disponível
dashboard-blocked = Bloqueado (reservado para transferências em andamento)
dashboard-balance = Saldo
dashboard-send-pix = Fazer um Pix
dashboard-accounts = Minhas contas no consórcio
dashboard-unreachable = { $count ->
    [one] Não foi possível falar com este banco: { $banks }. As contas de lá não aparecem.
   *[other] Não foi possível falar com estes { $count } bancos: { $banks }. As contas de lá não aparecem.
}
dashboard-recent = Movimentações recentes
dashboard-full-statement = Extrato completo

## Linhas do extrato, nas palavras do cliente

entries-none = Nenhuma movimentação ainda.
entry-deposit = Depósito
entry-deposit-cash = Depósito em dinheiro
entry-deposit-boleto = Depósito por boleto
entry-deposit-qr = Depósito por QR code
entry-withdrawal = Saque
entry-pix-sent = Pix enviado para { $counterparty }
entry-pix-sent-plain = Pix enviado
entry-pix-received = Pix recebido de { $counterparty }
entry-pix-received-plain = Pix recebido
entry-refund-sent = Devolução enviada para { $counterparty }
entry-refund-sent-plain = Devolução enviada
entry-refund-received = Devolução de { $counterparty }
entry-refund-received-plain = Devolução recebida
entry-other-out = Saída · { $counterparty }
entry-other-out-plain = Saída
entry-other-in = Entrada · { $counterparty }
entry-other-in-plain = Entrada
statement-heading = Extrato da conta { $number }
statement-shown = { $count ->
    [0] Nenhum lançamento nesta página.
    [one] Um lançamento nesta página.
   *[other] { $count } lançamentos nesta página.
}
statement-newest = Mais recentes
statement-older = Anteriores

## Depositar e sacar

money-deposit = Depositar
money-withdraw = Sacar
money-how = Como
method-cash = Dinheiro
method-boleto = Boleto
method-qr = QR code

## Pix

pix-heading = Fazer um Pix
pix-key = Chave Pix de quem recebe
pix-key-hint = CPF, CNPJ, e-mail, celular (+55…) ou chave aleatória.
pix-continue = Continuar
confirm-heading = Confirme o Pix
confirm-sending = Você está enviando
confirm-to = para
confirm-name = Nome
confirm-document = Documento
confirm-bank = Banco
confirm-key = Chave
confirm-send = Enviar { $amount }
confirm-cancel = Cancelar

## A página de uma transferência

transfer-heading = Transferência
transfer-done = Pronto: o dinheiro chegou.
transfer-nothing-moved = Nenhum dinheiro saiu.
transfer-in-progress = Ainda em andamento.
transfer-refresh = Atualize para ver como está.
transfer-fact-id = Id
transfer-fact-when = Quando
transfer-fact-total = Total
transfer-legs = { $count ->
    [one] Uma parte
   *[other] { $count } partes
}
transfer-to-key = (chave { $key })
failure-insufficient = Uma das contas de origem não tinha saldo suficiente.
failure-bank-unavailable = Não foi possível falar com um dos bancos.
failure-expired = Um banco respondeu tarde demais, e a transferência foi cancelada.
failure-unknown-key = Nenhuma conta do consórcio tem essa chave Pix.
failure-refused = Um banco recusou a transferência: { $detail }.

## Pacote

packet-heading = Pacote de transferências
packet-intro = Ou todas as partes acontecem, ou nenhuma. Escolha a origem de cada parte entre as suas contas em todos os bancos.
packet-leg = Parte { $n }
packet-from = De
packet-to = Para (chave Pix)
packet-totals = Total por origem
packet-over = mais do que o disponível: o pacote inteiro falharia
packet-ok = ok
packet-add = Acrescentar uma parte
packet-review = Conferir os totais
packet-send = Enviar o pacote
packet-source = { $bank } · { $number } ({ $available } disponível)
packet-choose-source = Escolha uma origem entre as suas contas.
packet-fix-legs = Algumas partes precisam de correção (veja abaixo).
packet-fill-one = Preencha pelo menos uma parte: uma origem, uma chave Pix e um valor.

## Receber

receive-heading = Receber
receive-keys = Minhas chaves Pix
receive-key-count = { $count ->
    [0] Nenhuma chave ainda.
    [one] Uma chave.
   *[other] { $count } chaves.
}
receive-register = Cadastrar uma nova chave
receive-type-email = Meu e-mail
receive-type-phone = Meu celular
receive-type-random = Uma chave aleatória
receive-register-submit = Cadastrar
receive-choose-type = Escolha um tipo de chave: e-mail, celular ou aleatória.
receive-code-heading = Pix copia e cola
receive-key = Chave
receive-amount = Valor (R$, opcional)
receive-make = Gerar o código
receive-code = Código
receive-code-for = Código para { $amount }
receive-qr-label = QR code do Pix
keykind-cpf = CPF
keykind-cnpj = CNPJ
keykind-email = e-mail
keykind-phone = celular
keykind-random = chave aleatória

## Consórcio

consortium-heading = Situação do consórcio
consortium-this-bank = Este banco
consortium-mode = Modo
consortium-in-doubt = Transações em dúvida
consortium-members = Membros
consortium-ring = Anel
consortium-unreadable = Não foi possível ler a situação: { $reason }
mode-token-ring = anel com ficha (token-ring)
mode-concurrent = simultâneo (concurrent)
member-up = no ar
member-suspected = sob suspeita
member-unknown = desconhecido
ring-epoch = Época
ring-holder = Último detentor conhecido
ring-this-bank = Este banco
ring-last-here = Ficha vista aqui
ring-visits = Visitas por segundo
ring-waiting = Transferências esperando a ficha
ring-not-heard = Sem notícias de
ring-token-ring = Anel com ficha
ring-off = desligado: cada banco começa seu trabalho entre bancos quando quiser
ring-bank = banco { $id }
ring-not-yet = ainda não
ring-ms-ago = há { $ms } ms
role-idle = parado
role-holding = com a ficha
role-passing = passando a ficha
role-pre-candidate = pré-candidato
role-candidate = candidato
clock-ahead = { $ms } ms adiantado: discorda, trabalho entre bancos com ele recusado
clock-behind = { $ms } ms atrasado: discorda, trabalho entre bancos com ele recusado
clock-agrees = concorda ({ $offset } ms ± { $uncertainty } ms)

## Um formulário enviado de outro site

csrf-title = Recusado
csrf-heading = Pedido recusado
csrf-body = Este formulário foi enviado de outro site ({ $why }). Nada foi alterado.
csrf-go = Ir para o seu banco
csrf-why-same-site = outra origem deste site
csrf-why-cross-site = um pedido de outro site
csrf-why-origin = a origem (Origin) não é este banco

## Comprovante Pix e devolução
title-receipt = Comprovante Pix
title-refund-receipt = Comprovante de devolução Pix
title-no-pix = Pix não encontrado
receipt-and-refund = Comprovante e devolução
receipt-when = Data e hora
receipt-e2e = ID fim a fim
receipt-refund-of = Devolução de
receipt-reason = Motivo
receipt-description = Descrição
receipt-refunded = Devolvido
receipt-paid-by = Pago por
receipt-received-by = Recebido por
receipt-name = Nome
receipt-document = CPF/CNPJ
receipt-bank = Instituição
receipt-key = Chave Pix
receipt-bank-code = { $bank } · instituição { $code }
receipt-transfer-leg = Transferência { $id }, parte { $leg }.
refund-heading = Devolver este Pix
refund-may-send = Você pode devolver ao pagador, em uma ou mais devoluções em até 90 dias, até
refund-amount = Valor (R$)
refund-reason = Motivo (opcional)
refund-submit = Devolver

## O aviso da API compatível com o sistema original na página do consórcio
consortium-seed-compat-on = API COMPATÍVEL COM O SISTEMA ORIGINAL LIGADA: as rotas do sistema original respondem aqui sem autenticação — qualquer um que alcance este banco pode mover o dinheiro de qualquer cliente; só para demonstrações em rede confiável
