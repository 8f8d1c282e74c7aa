# Recusas em palavras para o cliente. Os erros do núcleo trazem frases em inglês para a API;
# web/words.rs as reconhece e escolhe uma destas (um teste de unidade liga cada padrão ao erro
# que o núcleo de fato constrói).

err-internal = Algo deu errado do nosso lado; nada foi alterado. Tente de novo.
err-insufficient = Saldo insuficiente: { $available } disponível, { $requested } pedido.
err-unknown-key = Nenhuma conta do consórcio tem a chave Pix { $key }.
err-overloaded = O banco está ocupado agora; nada foi alterado. Tente de novo daqui a pouco.
err-sign-ins = Muitas tentativas de entrar sem sucesso. Para proteger sua conta, espere { $seconds ->
    [one] um segundo
   *[other] { $seconds } segundos
} antes de tentar de novo.
err-key-lookups = Muitas consultas de chaves que ninguém tem. Confira a chave e espere { $seconds ->
    [one] um segundo
   *[other] { $seconds } segundos
} antes de consultar outra.
err-bank-unavailable = Não foi possível falar com um dos bancos, então nada foi feito. Tente de novo daqui a pouco.
err-idempotency = Este formulário já foi enviado com outros valores; abra-o de novo.
err-amount-empty = Digite um valor, por exemplo 1234,56.
err-amount-positive = O valor precisa ser maior que zero.
err-amount-too-big = Uma operação movimenta no máximo R$ 1.000.000,00.
err-amount-invalid = “{ $input }” não é um valor em dinheiro; digite assim: 1234,56.
err-cpf-invalid = “{ $input }” não é um CPF válido.
err-cnpj-invalid = “{ $input }” não é um CNPJ válido.
err-document-invalid = “{ $input }” não é um CPF nem um CNPJ válido.
err-email-invalid = “{ $input }” não é um endereço de e-mail válido.
err-phone-invalid = “{ $input }” não é um telefone brasileiro válido (por exemplo +55 75 99999-1234).
err-key-invalid = “{ $input }” não é uma chave Pix (CPF, CNPJ, e-mail, celular ou chave aleatória).
err-kind-invalid = “{ $input }” não é um tipo de conta (pessoa física, pessoa jurídica, conjunta).
err-method-invalid = “{ $input }” não é uma forma de depósito (dinheiro, boleto, QR code).
err-name-empty = Digite o nome do titular.
err-name-long = O nome de um titular tem no máximo { $max } caracteres.
err-name-invisible = O nome tem caracteres invisíveis ou de controle; digite-o de novo.
err-password-length = A senha precisa ter entre { $min } e { $max } caracteres.
err-password-common = Esta senha é uma das mais comuns, as primeiras que alguém tenta; escolha outra.
err-sign-in-wrong = E-mail ou senha incorretos.
err-email-taken = Já existe uma conta com o e-mail { $email } neste banco.
err-key-taken = A chave Pix { $key } já está cadastrada.
err-key-limit = Uma conta tem no máximo { $max } chaves Pix.
err-key-joint = Uma conta conjunta não tem chave de CPF/CNPJ.
err-in-leg = Parte { $n }: { $reason }
err-self-transfer = o destino é a sua própria conta.
err-not-yours = Você não pode movimentar a conta { $account }.
err-bank-not-member = O banco { $bank } não faz parte deste consórcio.
err-account-unknown = A conta { $account } não existe.
err-transfer-unknown = Esta transferência não existe, ou não é sua.
err-transfer-id = O id de uma transferência é um UUID.
err-individual-holders = Uma conta de pessoa física tem exatamente um titular, com CPF.
err-company-holders = Uma conta de pessoa jurídica tem exatamente um titular, com CNPJ.
err-joint-holders = Uma conta conjunta tem dois ou mais titulares, cada um com CPF.
err-joint-max = Uma conta conjunta tem no máximo { $max } titulares.
err-joint-distinct = Os titulares de uma conta conjunta precisam ser pessoas diferentes.
err-deposit-limit = Este depósito levaria o saldo acima do limite da conta.
err-receive-limit = A conta { $account } não pode receber tanto dinheiro.
err-legs-count = Uma transferência tem de 1 a { $max } partes.
err-account-gone = A conta conectada não existe mais.
err-shutting-down = O banco está desligando; tente de novo daqui a pouco.
err-key-not-everywhere = Não foi possível cadastrar a chave em todos os bancos; tente de novo daqui a pouco.
err-no-numbers = Este banco não tem mais números de conta.
err-other = O banco recusou: { $detail }.
